"""ReSample (Song et al. 2023; App. A): DDIM; every few steps hard data consistency on ẑ0, then stochastic resampling.

Per METHOD.md §4: ``ẑ0(y) = argmin_z ||y - A(D0(z))||² (+ λ||z - ẑ0||²)`` by Adam (lr 0.1) from ẑ0, stopped per
sample once ``(1/m)||y - A(D0(z))||² < τ = σ_y²``; then ``z ~ N((ω² a ẑ0(y) + b² z')/(ω² + b²), ω² b²/(ω² + b²) I)``.
No DPS step and no time travel (as the authors' code). Deliberate differences from the authors' code
(reference_impl §3.4) and the ReSample paper, following METHOD.md:

- resampling uses ``a, b, ω`` of the level of the unconditional sample ``z'`` it replaces (the step's target),
  not of the current step; on the last step (the clean end, b = 0) it therefore returns ẑ0(y) itself;
- ω_i² takes ᾱ_{i-1} at the previous *training* step, as the authors' code (Table 2's ω were tuned so), not
  at the previous DDIM step as the ReSample paper;
- no stages: latent-domain optimisation at every hard-data-consistency step, as METHOD.md writes it (the authors'
  code skips t > 750 and optimises pixels for 300 < t ≤ 750: only full runs from noise reach there, never Flash);
- the proximal weight ``lam`` acts (the authors' is inert, i.e. 0: the default here);
- τ = ``op.noise_std²``, the residual (and so ``lam``'s scale) in the operator's [0, 1] units: the authors' [-1, 1] test
  ``mse ≤ (2σ_y)²`` is the same test; the stop is strict (``<``) as METHOD.md writes it;
- Adam (``torch.optim.Adam``) runs per sample (own moments and step count); a sample that meets τ stops, costing
  nothing further.
Hard data consistency runs on every ``every``-th grid step counted from the bottom, the last step included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.guidance import take
from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import Correction, Counts, grid_and_step, randn_rows, reverse_diffusion
from flashdiff.diffusion.steps import stochastic_resample
from flashdiff.types import Operator, Params, SolverOutput


def hard_data_consistency(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, z0: Tensor, rows: Tensor,
                          counts: Counts, *, tau: float, max_iters: int, lr: float = 0.1, lam: float = 0.0) -> Tensor:
    """``argmin_z ||y - A(D0(z))||² + λ||z - ẑ0||²`` by Adam from ẑ0 (METHOD.md §4); z0 (A, C, h, w), rows (A,).

    Each sample is its own parameter of one ``torch.optim.Adam`` (own moments and step count), so samples stay
    independent of their batch. Before each step a sample with ``(1/m)||y - A(D0(z))||² < τ`` stops: its gradient
    is dropped (Adam skips it), so it keeps its z and leaves the batch. Counted per sample: decoder calls (the
    steps and the check that stopped it), backward passes and iterations (the steps). A sample that stops while
    others go on rides along once in their backward (not counted).
    """
    zs = [z0[k : k + 1].detach().clone().requires_grad_(True) for k in range(z0.shape[0])]
    optimizer = torch.optim.Adam(zs, lr=lr)
    live = torch.arange(z0.shape[0], device=z0.device)  # positions still optimising
    for _ in range(max_iters):
        batch = rows[live]
        with torch.enable_grad():
            z_live = torch.cat([zs[k] for k in live.tolist()])
            residual = y[batch] - op.A(model.decode(z_live), take(params, batch))  # (L, 3, H, W), [0, 1] units
            counts["decoder_calls"][batch] += 1
            fit = residual.flatten(1).pow(2).sum(dim=1)  # (L,)
            go = fit / residual[0].numel() >= tau  # (L,) samples not yet at τ
            if not bool(go.any()):
                break
            loss = fit + lam * (z_live - z0[live]).flatten(1).pow(2).sum(dim=1)
            optimizer.zero_grad(set_to_none=True)
            loss[go].sum().backward()  # rows are independent
        for k in live[~go].tolist():
            zs[k].grad = None  # stopped: Adam leaves it as it is
        live = live[go]
        counts["backward_passes"][rows[live]] += 1
        counts["inner_iterations"][rows[live]] += 1
        optimizer.step()
    return torch.cat([z.detach() for z in zs])


def resampling_correction(model: LatentDiffusion, op: Operator, y: Tensor, params: Params,
                          generators: Sequence[torch.Generator], dc_steps: Tensor, *, omega: float, max_iters: int,
                          lr: float, lam: float) -> Correction:
    """At the training steps ``dc_steps``: ẑ0(y) by hard data consistency, then resample z' at its level (eq. 16)."""
    dc = set(dc_steps.tolist())
    tau = float(op.noise_std) ** 2

    def correct(z_prime: Tensor, z0_hat: Tensor, i: Tensor, i_prev: Tensor, rows: Tensor, counts: Counts) -> Tensor:
        if int(i[0]) not in dc:
            return z_prime
        z0_y = hard_data_consistency(model, op, y, params, z0_hat, rows, counts, tau=tau, max_iters=max_iters, lr=lr,
                                     lam=lam)
        noise = randn_rows(generators, rows, z_prime.shape[1:], z_prime)
        return stochastic_resample(model.schedule, z0_y, z_prime, i_prev, omega, noise)

    return correct


def resample(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, z_start: Tensor, start: Tensor, *,
             generators: Sequence[torch.Generator], num_steps: int = 500, delta: float | None = 1.0, every: int = 10,
             omega: float = 400.0, max_iters: int = 100, lr: float = 0.1, lam: float = 0.0) -> SolverOutput:
    """ReSample from ``z_start`` (B, C, h, w) over each sample's last ``start`` (B,) steps; NFE and costs (B,).

    DDIM with stochasticity δ on the ``num_steps`` grid (``delta=None``: DDPM, 1000 steps); hard data
    consistency (at most ``max_iters`` Adam steps of rate ``lr``) and resampling with ``omega`` every ``every``
    grid steps from the bottom.
    """
    if every < 1 or max_iters < 0:
        raise ValueError(f"solver.every must be >= 1 and solver.max_iters >= 0, got {every} and {max_iters}")
    grid, step = grid_and_step(model.schedule, num_steps, delta)
    dc_steps = grid.flip(0)[::every]  # every `every`-th step counted from the last one
    correction = resampling_correction(model, op, y, params, generators, dc_steps, omega=omega, max_iters=max_iters,
                                       lr=lr, lam=lam)
    return reverse_diffusion(model, z_start, start, grid, step, generators, correction=correction)

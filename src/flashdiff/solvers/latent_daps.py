"""LatentDAPS (Zhang et al., *Improving Diffusion Inverse Problem Solving with Decoupled Noise Annealing*, CVPR 2025),
latent variant, implemented from the paper. An annealing schedule of noise levels (the solver's grid); at level i:

1. ẑ0(z_i): ``ode_steps`` deterministic DDIM (δ = 0) steps from i down to the clean end (the probability-flow ODE);
2. Langevin dynamics on z0 for ``p(z0 | z_i, y) ∝ N(z0; ẑ0, r_i² I) · exp(-||y - A(D0(z0))||² / (2 β_y²))``, the
   decoder in the gradient: ``z0 ← z0 + η_i ∇ log p + sqrt(2 η_i) ξ``, ``langevin_steps`` times;
3. re-noise to the next level: ``z_{i_prev} = sqrt(ᾱ_{i_prev}) z0 + sqrt(1 - ᾱ_{i_prev}) ε`` (the VP form of DAPS's
   ``x0 + σ ε``); at the clean end the result is z0.

Decisions where the paper leaves room (documented, not copied from any code): ``r_i = r · σ_i`` with
``σ_i = sqrt((1 - ᾱ_i)/ᾱ_i)``, the noise level of z_i in z0's units; the Langevin step is preconditioned by the
posterior's curvature for a unit Jacobian, ``η_i = lr / (1/r_i² + 1/β_y²)``, so it stays stable at every level
(≈ lr r_i² where the prior dominates, ≈ lr β_y² where the measurement does); the residual is in the operator's
[0, 1] units.
Flash starts the annealing at the level SNR-matched to σ̂², from the noise-corrected ẑ.

Costs per level and sample: ``ode_steps`` score forwards (no gradient through the UNet), ``langevin_steps``
decoder calls, backward passes and inner iterations. Every random draw (Langevin ξ, re-noise ε) is the sample's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flashdiff.devices import index
from flashdiff.diffusion.sampling import DiffusionStep, randn_rows
from flashdiff.diffusion.schedule import Schedule, _bc
from flashdiff.diffusion.steps import ddim_step
from flashdiff.types import LatentModel, Operator, StepBatch


@dataclass(frozen=True, kw_only=True)
class LatentDAPS:
    """Decoupled annealing posterior sampling in a latent space: a ``flashdiff.types.DiffusionSolver``."""

    num_steps: int = 50
    ode_steps: int = 5
    langevin_steps: int = 20
    lr: float = 0.1
    r: float = 1.0
    beta_y: float = 0.05
    name: str = "latent_daps"
    space: str = "latent"

    def grid(self, schedule: Schedule) -> Tensor:
        """The annealing levels, descending training steps (num_steps,): the uniform DDIM grid."""
        return schedule.grid(self.num_steps)

    def check(self, model: LatentModel, op: Operator | None) -> None:
        """The grid and model checks of the DDIM solvers (a latent model, ``solver.num_steps`` in range)."""
        DiffusionStep(name=self.name, num_steps=self.num_steps, delta=0.0).check(model, op)

    def costs_per_step(self) -> dict[str, int]:
        """What one annealing level costs each sample (``flashdiff.types.COUNTERS``)."""
        k = self.langevin_steps
        return {"score_forwards": self.ode_steps, "backward_passes": k, "decoder_calls": k, "encoder_calls": 0,
                "inner_iterations": k}

    def step(self, batch: StepBatch) -> Tensor:
        """One annealing level of every row: ODE to ẑ0, Langevin on z0, re-noise to ``i_prev``; (A, C, h, w)."""
        z0_hat = self.ode_to_clean(batch)
        z0 = self.langevin(batch, z0_hat)
        abar = batch.model.schedule.abar(batch.i_prev)  # ᾱ_{-1} = 1: at the clean end the result is z0
        return _bc(abar.sqrt(), z0) * z0 + _bc((1.0 - abar).sqrt(), z0) * batch.noise

    def ode_to_clean(self, batch: StepBatch) -> Tensor:
        """ẑ0 by ``ode_steps`` DDIM (δ = 0) steps from each row's i to the clean end, on steps ``⌊i (K-j)/K⌋``."""
        host = batch.i_host if batch.i_host is not None else batch.i.cpu()
        k = self.ode_steps
        steps = torch.stack([host * (k - j) // k for j in range(k)] + [torch.full_like(host, -1)])  # (K+1, A)
        steps = index(steps, batch.z.device)
        z = batch.z
        with torch.no_grad():
            for j in range(k):
                z = ddim_step(batch.model.schedule, z, batch.model.eps(z, steps[j]), steps[j], steps[j + 1])
        batch.counts["score_forwards"] += k
        return z

    def langevin(self, batch: StepBatch, z0_hat: Tensor) -> Tensor:
        """``langevin_steps`` of ``z0 ← z0 + η ∇ log p(z0 | z_i, y) + sqrt(2η) ξ``, η = lr / (1/r_i² + 1/β_y²)."""
        abar = batch.model.schedule.abar(batch.i)
        r2 = self.r**2 * (1.0 - abar) / abar  # (A,) float64: r_i² = r² σ_i²
        eta = _bc(self.lr / (1.0 / r2 + 1.0 / self.beta_y**2), z0_hat)
        z0 = z0_hat
        for _ in range(self.langevin_steps):
            with torch.enable_grad():
                z0 = z0.detach().requires_grad_(True)
                residual = batch.y - batch.op.A(batch.model.decode(z0), batch.params)  # [0, 1] units
                log_p = -(z0 - z0_hat).flatten(1).pow(2).sum(1) / (2 * r2.to(z0.dtype)) \
                    - residual.flatten(1).pow(2).sum(1) / (2 * self.beta_y**2)
                (grad,) = torch.autograd.grad(log_p.sum(), z0)  # rows are independent
            xi = randn_rows(batch.generators, z0.shape[1:], z0)
            z0 = (z0 + eta * grad + (2 * eta).sqrt() * xi).detach()
        for name in ("backward_passes", "decoder_calls", "inner_iterations"):
            batch.counts[name] += self.langevin_steps
        return z0


def latent_daps(*, num_steps: int = 50, ode_steps: int = 5, langevin_steps: int = 20, lr: float = 0.1, r: float = 1.0,
                beta_y: float = 0.05) -> LatentDAPS:
    """LatentDAPS on ``num_steps`` annealing levels: ``ode_steps`` DDIM steps to ẑ0 and ``langevin_steps`` Langevin
    steps of rate ``lr`` (preconditioned) per level, prior width ``r`` σ_i, likelihood std ``beta_y`` ([0, 1] units)."""
    from flashdiff.errors import ConfigError

    for key, value in (("ode_steps", ode_steps), ("langevin_steps", langevin_steps)):
        if int(value) != value or value < 1:
            raise ConfigError(f"solver.{key} must be an integer >= 1, got {value}")
    if not (lr > 0 and r > 0 and beta_y > 0):
        raise ConfigError(f"solver.lr, solver.r and solver.beta_y must be > 0, got {lr}, {r}, {beta_y}")
    return LatentDAPS(num_steps=num_steps, ode_steps=int(ode_steps), langevin_steps=int(langevin_steps), lr=lr, r=r,
                      beta_y=beta_y)

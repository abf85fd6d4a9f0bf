"""The step rule shared by every diffusion solver here: an unconditional DDPM/DDIM step and three hooks, each
optional: guidance through the UNet (a gradient on z_i through ε_θ and Tweedie: the DPS family), guidance on ẑ0
only (gradient steps on ẑ0 through the decoder, then the step from the updated ẑ0: MPGD), and a correction after
the step (ReSample). The loop over steps lives only in the engine (``flashdiff.engine``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from flashdiff.devices import host_empty, to_device
from flashdiff.diffusion.schedule import Schedule
from flashdiff.diffusion.steps import ddim_from_z0, ddim_step, ddpm_from_z0, ddpm_step, tweedie_z0
from flashdiff.types import LatentModel, Operator, StepBatch

Step = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
"""(z_i, eps, i, i_prev, noise) -> z_{i_prev}; i, i_prev (A,), i_prev = -1 at the clean end."""

Guidance = Callable[[StepBatch, Tensor], Tensor]
"""(the step's batch, ẑ0(z_i) (A, C, h, w)) -> weighted per-sample loss (A,) to descend; counts its own calls."""

Correction = Callable[[StepBatch, Tensor, Tensor], Tensor]
"""(the step's batch, z'_{i_prev}, ẑ0(z_i)) -> z_{i_prev} (A, C, h, w), applied after the step (ReSample)."""


def make_step(schedule: Schedule, delta: float | None) -> Step:
    """The unconditional step: ancestral DDPM (``delta=None``), else DDIM with stochasticity δ (App. D, eq. 21)."""
    if delta is None:
        return lambda z, eps, i, i_prev, noise: ddpm_step(schedule, z, eps, i, noise)
    return lambda z, eps, i, i_prev, noise: ddim_step(schedule, z, eps, i, i_prev, noise, delta)


def randn_rows(generators: Sequence[torch.Generator], shape: Sequence[int], like: Tensor) -> Tensor:
    """Standard normal noise (len(generators), *shape), row r drawn from ``generators[r]``; on like's device/dtype.

    Drawn on the CPU, so results do not depend on the device, into one host buffer sent in one non-blocking upload.
    """
    host = host_empty((len(generators), *shape), torch.float32, like.device)
    for row, g in zip(host, generators):
        row.normal_(generator=g)  # = torch.randn(shape, generator=g)
    return to_device(host, like.device).to(like.dtype)


def z0_guided_step(batch: StepBatch, delta: float | None, guidance: Guidance, inner_steps: int = 1,
                   ) -> tuple[Tensor, Tensor]:
    """Guidance on ẑ0 only (MPGD, He et al. 2024): ε̂ and ẑ0 from the UNet with no gradient through it, then
    ``inner_steps`` steps ``ẑ0 ← ẑ0 - ∇_{ẑ0} L(ẑ0)`` through the decoder alone, then the DDIM (δ) or DDPM
    (``delta=None``) step from the updated ẑ0 and the same ε̂; returns (z_{i_prev}, ε̂), (A, C, h, w) each."""
    schedule = batch.model.schedule
    with torch.no_grad():
        eps = batch.model.eps(batch.z, batch.i)
    z0 = tweedie_z0(schedule, batch.z, eps, batch.i)
    for _ in range(inner_steps):
        with torch.enable_grad():
            z0 = z0.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(guidance(batch, z0).sum(), z0)  # rows are independent
        z0 = (z0 - grad.to(z0.dtype)).detach()
        batch.counts["backward_passes"] += 1
    if delta is None:
        return ddpm_from_z0(schedule, z0, batch.z, batch.i, batch.noise), eps
    return ddim_from_z0(schedule, z0, eps, batch.i, batch.i_prev, batch.noise, delta), eps


def guided_step(batch: StepBatch, step: Step, guidance: Guidance) -> tuple[Tensor, Tensor]:
    """``z_{i-1} = z'_{i-1} - ∇_{z_i} L(ẑ0(z_i))`` (METHOD.md §4), and ε; the gradient runs through UNet and Tweedie."""
    with torch.enable_grad():
        z_i = batch.z.detach().requires_grad_(True)
        eps = batch.model.eps(z_i, batch.i)
        loss = guidance(batch, tweedie_z0(batch.model.schedule, z_i, eps, batch.i))  # (A,), weights included
        (grad,) = torch.autograd.grad(loss.sum(), z_i)  # rows are independent: the sum's gradient is per sample
    batch.counts["backward_passes"] += 1
    return step(z_i.detach(), eps.detach(), batch.i, batch.i_prev, batch.noise) - grad.to(z_i.dtype), eps.detach()


@dataclass(frozen=True, kw_only=True)
class DiffusionStep:
    """A diffusion solver made of shared parts (``flashdiff.types.DiffusionSolver``): the DDPM (``delta=None``) or
    DDIM (δ) step on an ``num_steps`` grid and the hooks: ``guidance`` (a gradient through the UNet, DPS family),
    ``z0_guidance`` (``inner_steps`` gradient steps on ẑ0 through the decoder only, MPGD), ``correction``
    (after the step, ReSample).

    ``space`` is ``latent`` (any latent model) or ``pixel`` (a ``PixelDiffusion``: pixel DPS); ``linear_only``
    solvers need ``op.A_adjoint`` (PSLD). ``name`` is the solver's config option, used in error messages.
    """

    name: str
    num_steps: int
    delta: float | None = None
    guidance: Guidance | None = None
    z0_guidance: Guidance | None = None
    inner_steps: int = 1
    correction: Correction | None = None
    space: str = "latent"
    linear_only: bool = False

    def costs_per_step(self) -> dict[str, int] | None:
        """What one reverse step costs each sample (``flashdiff.types.COUNTERS``), declared for the contract tests;
        None where it depends on the data (a correction such as ReSample's per-sample stop)."""
        if self.correction is not None:
            return None
        guidance = self.guidance or self.z0_guidance
        steps = 0 if guidance is None else self.inner_steps if self.z0_guidance is not None else 1
        calls = getattr(guidance, "calls", {})
        return {"score_forwards": 1, "backward_passes": steps, "inner_iterations": 0,
                **{name: steps * calls.get(name, 0) for name in ("decoder_calls", "encoder_calls")}}

    def grid(self, schedule: Schedule) -> Tensor:
        """Descending training steps (num_steps,): every step for DDPM, ldm's uniform DDIM grid otherwise."""
        return schedule.grid(self.num_steps)

    def check(self, model: LatentModel, op: Operator | None) -> None:
        """Refuse a model, grid or operator this solver cannot run, naming the key to change."""
        from flashdiff.diffusion.model import PixelDiffusion
        from flashdiff.errors import ConfigError

        steps = model.schedule.num_steps
        if not 1 <= self.num_steps <= steps:
            raise ConfigError(f"solver.num_steps={self.num_steps} must lie in [1, {steps}] (the model's schedule)")
        if self.delta is None and model.schedule.path != "vp":
            raise ConfigError(f"solver={self.name} takes ancestral DDPM steps, which need a discrete VP (β) schedule; "
                              f"the model is a {model.schedule.path} prior: set solver.delta (0 = its Euler ODE step) "
                              "or use a DDIM-grid solver (solver=ddim, latent_dps_ddim, resample, mpgd, latent_daps)")
        if self.delta is None and self.num_steps != steps:
            raise ConfigError(f"solver.num_steps={self.num_steps} needs DDIM: set solver.delta (0 deterministic, "
                              f"1 DDPM-like) or use solver=ddim; DDPM runs all solver.num_steps={steps}")
        if self.space == "pixel" and not isinstance(model, PixelDiffusion):
            raise ConfigError(f"solver={self.name} runs in pixel space but the model is a {type(model).__name__}: "
                              "set model=toy_pixel_ddpm (or model=ddpm_celebahq256), or use solver=latent_dps")
        if self.linear_only and (getattr(op, "linear", True) is False or not callable(getattr(op, "A_adjoint", None))):
            raise ConfigError(f"solver={self.name} needs a linear operator with a transpose (A_adjoint); "
                              f"{type(op).__name__} has none: pick a linear operator (blur, inpainting) or another "
                              "solver (latent_dps, gml_dps, resample)")

    def step(self, batch: StepBatch) -> Tensor:
        """One reverse step of every row: (guided) DDPM/DDIM step, then the correction; counts UNet rows."""
        step = make_step(batch.model.schedule, self.delta)
        if self.z0_guidance is not None:
            z_prev, eps = z0_guided_step(batch, self.delta, self.z0_guidance, self.inner_steps)
        elif self.guidance is None:
            eps = batch.model.eps(batch.z, batch.i)
            z_prev = step(batch.z, eps, batch.i, batch.i_prev, batch.noise)
        else:
            z_prev, eps = guided_step(batch, step, self.guidance)
        batch.counts["score_forwards"] += 1
        if self.correction is not None:
            z_prev = self.correction(batch, z_prev, tweedie_z0(batch.model.schedule, batch.z, eps, batch.i))
        return z_prev

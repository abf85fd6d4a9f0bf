"""Latent-DPS (App. A): the DDPM (or DDIM) step plus ``-η ∇_{z_i} ||y - A(D0(ẑ0(z_i)))||`` per sample.

As the authors' code and the original DPS code (METHOD.md §4): the gradient of the *unsquared* residual norm,
measured in the models' [-1, 1] units (twice the [0, 1] norm), so the paper's Table 2 step sizes carry over.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import Guidance, make_step, reverse_diffusion
from flashdiff.diffusion.steps import sampling_grid
from flashdiff.types import Operator, Params, SolverOutput


def take(params: Params, rows: Tensor) -> Params:
    """The per-sample parameters of some batch rows."""
    return {k: v[rows.to(v.device)] for k, v in params.items()}


def dps_guidance(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, eta: float) -> Guidance:
    """``η ||y - A(D0(ẑ0))||_2`` per sample, in [-1, 1] units; the residual norm normalises the DPS step."""

    def loss(z0_hat: Tensor, rows: Tensor) -> Tensor:
        residual = 2.0 * (y[rows] - op.A(model.decode(z0_hat), take(params, rows)))  # (A, 3, H, W)
        return eta * residual.flatten(1).norm(dim=1)

    return loss


def latent_dps(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, z_start: Tensor, start: Tensor, *,
               generators: Sequence[torch.Generator], num_steps: int = 1000, eta: float = 1.0,
               delta: float | None = None) -> SolverOutput:
    """Latent-DPS from ``z_start`` (B, C, h, w) over each sample's last ``start`` (B,) steps; NFE (B,).

    ``delta=None`` runs ancestral DDPM (``num_steps`` must be the schedule's 1000); a float δ runs DDIM on the
    ``num_steps`` grid with that stochasticity (App. D).
    """
    if delta is None and num_steps != model.schedule.num_steps:
        raise ValueError(f"solver.num_steps={num_steps} needs DDIM: set solver.delta (0 deterministic, 1 DDPM-like)")
    grid = sampling_grid(model.schedule.num_steps, num_steps)
    return reverse_diffusion(model, z_start, start, grid, make_step(model.schedule, delta), generators,
                             guidance=dps_guidance(model, op, y, params, eta))

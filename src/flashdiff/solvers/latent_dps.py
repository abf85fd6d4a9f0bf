"""Latent-DPS (App. A): the DDPM (or DDIM) step plus ``-η ∇_{z_i} ||y - A(D0(ẑ0(z_i)))||`` per sample.

As the authors' code and the original DPS code (METHOD.md §4): the gradient of the *unsquared* residual norm,
measured in the models' [-1, 1] units (twice the [0, 1] norm), so the paper's Table 2 step sizes carry over.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.guidance import latent_guidance
from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import grid_and_step, reverse_diffusion
from flashdiff.types import Operator, Params, SolverOutput


def latent_dps(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, z_start: Tensor, start: Tensor, *,
               generators: Sequence[torch.Generator], num_steps: int = 1000, eta: float = 1.0,
               delta: float | None = None) -> SolverOutput:
    """Latent-DPS from ``z_start`` (B, C, h, w) over each sample's last ``start`` (B,) steps; NFE and costs (B,).

    ``delta=None`` runs ancestral DDPM (``num_steps`` must be the schedule's 1000); a float δ runs DDIM on the
    ``num_steps`` grid with that stochasticity (App. D). Per step: one UNet forward, one decoder call, one backward.
    """
    grid, step = grid_and_step(model.schedule, num_steps, delta)
    return reverse_diffusion(model, z_start, start, grid, step, generators,
                             guidance=latent_guidance(model, op, y, params, eta))

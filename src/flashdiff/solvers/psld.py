"""PSLD (Rout et al. 2024; App. A), linear operators only: Latent-DPS plus the gluing term
``-γ ∇_{z_i} ||ẑ0 - E0(Aᵀy + (I - AᵀA) D0(ẑ0))||``, y in place of the noiseless measurement.

As METHOD.md §4 and the authors' code: unsquared norms per sample. Deliberate difference from the authors' code
(reference_impl §3.3): the gluing is computed on [0, 1] images with the operator's exact transpose, so its affine
parts cancel exactly (the authors rescale around every A/Aᵀ call and fold the blur border off by one pixel).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.guidance import adjoint_of_measurement, latent_guidance
from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import grid_and_step, reverse_diffusion
from flashdiff.types import Operator, Params, SolverOutput


def psld(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, z_start: Tensor, start: Tensor, *,
         generators: Sequence[torch.Generator], num_steps: int = 1000, eta: float = 1.0, gamma: float = 0.1,
         delta: float | None = None) -> SolverOutput:
    """PSLD from ``z_start`` (B, C, h, w) over each sample's last ``start`` (B,) steps; NFE and costs (B,).

    Needs ``op.A_adjoint``: a nonlinear operator is a ValueError. ``delta=None`` runs ancestral DDPM (1000
    steps), a float δ DDIM on the ``num_steps`` grid. Per step: one UNet forward, one D0, one E0, one backward.
    """
    aty = adjoint_of_measurement(op, y, params)  # (B, 3, H, W)
    grid, step = grid_and_step(model.schedule, num_steps, delta)
    return reverse_diffusion(model, z_start, start, grid, step, generators,
                             guidance=latent_guidance(model, op, y, params, eta, gamma=gamma, aty=aty))

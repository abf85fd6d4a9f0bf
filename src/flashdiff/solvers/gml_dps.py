"""GML-DPS (Rout et al. 2024; App. A): Latent-DPS plus the goodness-modified term ``-γ ∇_{z_i} ||ẑ0 - E0(D0(ẑ0))||``.

As METHOD.md §4 and the authors' code: both terms are *unsquared* norms per sample (the paper's ``γ_i = γ / ||.||``
normalisation of the squared norm, halved), the gradient taken w.r.t. ``z_i`` through UNet, D0 and E0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.guidance import latent_guidance
from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import grid_and_step, reverse_diffusion
from flashdiff.types import Operator, Params, SolverOutput


def gml_dps(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, z_start: Tensor, start: Tensor, *,
            generators: Sequence[torch.Generator], num_steps: int = 1000, eta: float = 1.0, gamma: float = 0.05,
            delta: float | None = None) -> SolverOutput:
    """GML-DPS from ``z_start`` (B, C, h, w) over each sample's last ``start`` (B,) steps; NFE and costs (B,).

    ``delta=None`` runs ancestral DDPM (1000 steps), a float δ DDIM on the ``num_steps`` grid. Per step: one
    UNet forward, one decoder and one encoder call (none where γ = 0), one backward.
    """
    grid, step = grid_and_step(model.schedule, num_steps, delta)
    return reverse_diffusion(model, z_start, start, grid, step, generators,
                             guidance=latent_guidance(model, op, y, params, eta, gamma=gamma))

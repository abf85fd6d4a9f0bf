"""DPS (Chung et al. 2023; App. A): the DDPM step in pixel space plus ``-η ∇_{x_i} ||y - A(x̂0(x_i))||`` per sample.

The comparison method of the paper: Latent-DPS's update with a pixel diffusion model (``PixelDiffusion``, whose
"autoencoder" is the identity ``z = 2x - 1``), so x̂0 is Tweedie's estimate in pixel space. As the original DPS
code (and METHOD.md §4): the gradient of the *unsquared* residual norm in [-1, 1] units, step ``η`` (their ζ).
It runs from pure noise (``adapter=none``): the severity encoders and Flash live in a latent space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.guidance import latent_guidance
from flashdiff.diffusion.model import LatentDiffusion, PixelDiffusion
from flashdiff.diffusion.sampling import grid_and_step, reverse_diffusion
from flashdiff.types import Operator, Params, SolverOutput


def dps(model: LatentDiffusion, op: Operator, y: Tensor, params: Params, z_start: Tensor, start: Tensor, *,
        generators: Sequence[torch.Generator], num_steps: int = 1000, eta: float = 1.0,
        delta: float | None = None) -> SolverOutput:
    """Pixel DPS from ``z_start`` (B, 3, H, W) in [-1, 1] over each sample's last ``start`` (B,) steps; NFE and costs.

    ``model`` must be a ``PixelDiffusion`` (``model=toy_pixel_ddpm`` or a diffusers pixel DDPM); ``delta=None``
    runs ancestral DDPM over its schedule, a float δ DDIM on the ``num_steps`` grid.
    """
    if not isinstance(model, PixelDiffusion):
        raise ValueError(f"solver=dps runs in pixel space but the model is a {type(model).__name__}: set "
                         "model=toy_pixel_ddpm (or model=ddpm_celebahq256; the FFHQ experiments pick their pixel_model "
                         "themselves), or use solver=latent_dps for latents")
    grid, step = grid_and_step(model.schedule, num_steps, delta)
    return reverse_diffusion(model, z_start, start, grid, step, generators,
                             guidance=latent_guidance(model, op, y, params, eta))

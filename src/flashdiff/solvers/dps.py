"""DPS (Chung et al. 2023; App. A): the DDPM step in pixel space plus ``-η ∇_{x_i} ||y - A(x̂0(x_i))||`` per sample.

The comparison method of the paper: Latent-DPS's update with a pixel diffusion model (``PixelDiffusion``, whose
"autoencoder" is the identity ``z = 2x - 1``), so x̂0 is Tweedie's estimate in pixel space. As the original DPS
code (and METHOD.md §4): the gradient of the *unsquared* residual norm in [-1, 1] units, step ``η`` (their ζ).
It runs from pure noise (``adapter=none``): the severity encoders and Flash live in a latent space.
"""

from __future__ import annotations

from flashdiff.diffusion.guidance import ResidualGuidance
from flashdiff.diffusion.sampling import DiffusionStep


def dps(*, num_steps: int = 1000, eta: float = 1.0, delta: float | None = None) -> DiffusionStep:
    """Pixel DPS on a ``num_steps`` grid of a ``PixelDiffusion`` (``model=toy_pixel_ddpm`` or a diffusers pixel DDPM):
    ``delta=None`` runs ancestral DDPM over its schedule, a float δ DDIM."""
    return DiffusionStep(name="dps", num_steps=num_steps, delta=delta, guidance=ResidualGuidance(eta), space="pixel")

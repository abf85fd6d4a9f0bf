"""Latent-DPS (App. A): the DDPM (or DDIM) step plus ``-η ∇_{z_i} ||y - A(D0(ẑ0(z_i)))||`` per sample.

As the authors' code and the original DPS code (METHOD.md §4): the gradient of the *unsquared* residual norm,
measured in the models' [-1, 1] units (twice the [0, 1] norm), so the paper's Table 2 step sizes carry over.
"""

from __future__ import annotations

from flashdiff.diffusion.guidance import ResidualGuidance
from flashdiff.diffusion.sampling import DiffusionStep


def latent_dps(*, num_steps: int = 1000, eta: float = 1.0, delta: float | None = None) -> DiffusionStep:
    """Latent-DPS on a ``num_steps`` grid: ancestral DDPM (``delta=None``, ``num_steps`` the schedule's 1000) or DDIM
    with stochasticity δ (App. D). Per step: one UNet forward, one decoder call, one backward."""
    return DiffusionStep(name="latent_dps", num_steps=num_steps, delta=delta, guidance=ResidualGuidance(eta))

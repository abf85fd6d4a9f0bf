"""MPGD, latent variant (He et al., *Manifold Preserving Guided Diffusion*, ICLR 2024): guidance on ẑ0 only.

Per step: ε̂ and ẑ0 from the UNet *without* a gradient through it; ``inner_steps`` gradient steps
``ẑ0 ← ẑ0 - η ∇_{ẑ0} ||y - A(D0(ẑ0))||`` through the decoder alone (the unsquared norm in the models' [-1, 1] units,
as the project's DPS family); then the DDIM step (δ) from the updated ẑ0 and ε̂. The cheap end of guided solvers:
no backward through the UNet.
"""

from __future__ import annotations

from flashdiff.diffusion.guidance import ResidualGuidance
from flashdiff.diffusion.sampling import DiffusionStep


def mpgd(*, num_steps: int = 100, eta: float = 1.0, delta: float | None = 1.0, inner_steps: int = 1) -> DiffusionStep:
    """MPGD on a ``num_steps`` grid: DDIM with stochasticity δ (``delta=None``: ancestral DDPM over all 1000 steps).
    Per step: one UNet forward (no gradient), ``inner_steps`` decoder calls and backward passes through D0."""
    from flashdiff.errors import ConfigError

    if int(inner_steps) != inner_steps or inner_steps < 1:
        raise ConfigError(f"solver.inner_steps must be an integer >= 1, got {inner_steps}")
    return DiffusionStep(name="mpgd", num_steps=num_steps, delta=delta, z0_guidance=ResidualGuidance(eta),
                         inner_steps=int(inner_steps))

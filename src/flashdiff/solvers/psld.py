"""PSLD (Rout et al. 2024; App. A), linear operators only: Latent-DPS plus the gluing term
``-γ ∇_{z_i} ||ẑ0 - E0(Aᵀy + (I - AᵀA) D0(ẑ0))||``, y in place of the noiseless measurement.

As METHOD.md §4 and the authors' code: unsquared norms per sample. Deliberate difference from the authors' code
(reference_impl §3.3): the gluing is computed on [0, 1] images with the operator's exact transpose, so its affine
parts cancel exactly (the authors rescale around every A/Aᵀ call and fold the blur border off by one pixel).
"""

from __future__ import annotations

from flashdiff.diffusion.guidance import ResidualGuidance
from flashdiff.diffusion.sampling import DiffusionStep


def psld(*, num_steps: int = 1000, eta: float = 1.0, gamma: float = 0.1, delta: float | None = None) -> DiffusionStep:
    """PSLD on a ``num_steps`` grid (``delta=None``: ancestral DDPM, else DDIM with δ); needs ``op.A_adjoint``.
    Per step: one UNet forward, one D0, one E0, one backward."""
    return DiffusionStep(name="psld", num_steps=num_steps, delta=delta, linear_only=True,
                         guidance=ResidualGuidance(eta, gamma, gluing=True))

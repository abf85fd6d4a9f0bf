"""GML-DPS (Rout et al. 2024; App. A): Latent-DPS plus the goodness-modified term ``-γ ∇_{z_i} ||ẑ0 - E0(D0(ẑ0))||``.

As METHOD.md §4 and the authors' code: both terms are *unsquared* norms per sample (the paper's ``γ_i = γ / ||.||``
normalisation of the squared norm, halved), the gradient taken w.r.t. ``z_i`` through UNet, D0 and E0.
"""

from __future__ import annotations

from flashdiff.diffusion.guidance import ResidualGuidance
from flashdiff.diffusion.sampling import DiffusionStep


def gml_dps(*, num_steps: int = 1000, eta: float = 1.0, gamma: float = 0.05,
            delta: float | None = None) -> DiffusionStep:
    """GML-DPS on a ``num_steps`` grid (``delta=None``: ancestral DDPM, else DDIM with δ). Per step: one UNet forward,
    one decoder and one encoder call (none where γ = 0), one backward."""
    return DiffusionStep(name="gml_dps", num_steps=num_steps, delta=delta, guidance=ResidualGuidance(eta, gamma))

"""Unguided DDIM sampling of the latent prior on an N-step grid with stochasticity δ (App. D, eq. 21)."""

from __future__ import annotations

from flashdiff.diffusion.sampling import DiffusionStep


def ddim(*, num_steps: int = 100, delta: float = 0.0) -> DiffusionStep:
    """DDIM on a ``num_steps`` grid with stochasticity δ (0 deterministic, 1 DDPM-like), y unused; the last step
    lands on ``abar = 1`` (the clean latent)."""
    return DiffusionStep(name="ddim", num_steps=num_steps, delta=delta)

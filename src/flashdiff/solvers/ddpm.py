"""Unguided ancestral DDPM sampling of the latent prior from per-sample starts (the paper's 1000-step sampler)."""

from __future__ import annotations

from flashdiff.diffusion.sampling import DiffusionStep


def ddpm(*, num_steps: int = 1000) -> DiffusionStep:
    """Ancestral DDPM over every step of the schedule, y unused: with ``adapter=none`` it samples the model."""
    return DiffusionStep(name="ddpm", num_steps=num_steps, delta=None)

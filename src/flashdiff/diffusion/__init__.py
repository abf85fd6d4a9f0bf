"""Latent-diffusion plumbing: the model wrapper, the LDM schedule and pure step helpers. Names load on first use, so
a solver's config check (``flashdiff.diffusion.sampling``) does not import diffusers."""

from importlib import import_module
from typing import Any

_HOMES = {"ModelNotFoundError": "hub", "resolve_model_path": "hub", "LatentDiffusion": "model",
          "PixelDiffusion": "model", "Schedule": "schedule", "ldm_scheduler": "schedule", "pixel_scheduler": "schedule"}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'flashdiff.diffusion' has no attribute {name!r}")
    return getattr(import_module(f"flashdiff.diffusion.{_HOMES[name]}"), name)

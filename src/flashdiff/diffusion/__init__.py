"""Latent-diffusion plumbing: the model wrapper, the LDM schedule and pure step helpers."""

from flashdiff.diffusion.hub import ModelNotFoundError, resolve_model_path
from flashdiff.diffusion.model import LatentDiffusion, PixelDiffusion
from flashdiff.diffusion.schedule import Schedule, ldm_scheduler, pixel_scheduler

__all__ = ["LatentDiffusion", "ModelNotFoundError", "PixelDiffusion", "Schedule", "ldm_scheduler", "pixel_scheduler",
           "resolve_model_path"]

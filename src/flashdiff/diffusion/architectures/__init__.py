"""The real-size text-to-image families as their snapshots configure them (``<family>.json``: the vae/,
unet|transformer/ and scheduler/ config.json values, and the shapes of the prompt conditioning), for checks on the
meta device and memory measurements with random weights: nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from flashdiff.diffusion.model import LatentDiffusion

HERE = Path(__file__).parent
FAMILIES = tuple(sorted(p.stem for p in HERE.glob("*.json")))


def architecture(family: str) -> dict:
    """``{"vae", "denoiser", "scheduler", "conditioning"}`` of ``family`` (one of ``FAMILIES``)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    return json.loads((HERE / f"{family}.json").read_text())


def random_prior(family: str, *, image_size: int | None = None, device: str | torch.device = "cpu",
                 cfg_scale: float = 1.0, dtype: torch.dtype | None = None) -> LatentDiffusion:
    """``family`` at real size with random weights and a random fixed conditioning of its real shapes, built on
    ``device`` (``meta``: shapes only, no memory); ``dtype`` for the denoiser (the autoencoder stays float32)."""
    import diffusers
    from diffusers import AutoencoderKL

    from flashdiff.diffusion.priors import assemble

    arch = architecture(family)
    with torch.device(device):
        vae = AutoencoderKL.from_config(arch["vae"])
        net = getattr(diffusers, arch["denoiser"]["_class_name"]).from_config(arch["denoiser"]).to(dtype)
        cond = {k: torch.randn(1, *shape) for k, shape in arch["conditioning"].items()}
    base = LatentDiffusion(vae, None, arch["vae"]["scaling_factor"], shift_factor=arch["vae"].get("shift_factor", 0.0))
    return assemble(base, net, arch["scheduler"], cond, dict(cond), cfg_scale=cfg_scale,
                    image_size=image_size or arch["vae"]["sample_size"])

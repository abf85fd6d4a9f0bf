"""Architectures of the paper's pretrained models as diffusers configs (no weights): real-size smoke tests, benches
and the default backbone of the authors' severity encoders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flashdiff.diffusion.model import LatentDiffusion

HERE = Path(__file__).parent


def architecture(name: str) -> dict[str, Any]:
    """The diffusers config ``<name>.json`` of this folder (``vq_f4``, ``ldm_unet_celebahq256``), ``_`` keys dropped."""
    path = HERE / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in HERE.glob("*.json"))
        raise KeyError(f"no architecture {name!r}; known: {known}")
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def random_latent_diffusion(seed: int = 0) -> LatentDiffusion:
    """The paper's LDM architecture (VQ-f4 + the 274 M-parameter UNet, scale 1.0) with random weights, frozen.

    Real shapes, memory and data flow (3×64×64 latents for 256² images) without any download.
    """
    import torch
    from diffusers import UNet2DModel, VQModel

    from flashdiff.diffusion.model import LatentDiffusion

    torch.manual_seed(seed)
    vq = VQModel.from_config(architecture("vq_f4"))
    unet = UNet2DModel.from_config(architecture("ldm_unet_celebahq256"))
    return LatentDiffusion(vq, unet, scale_factor=1.0).requires_grad_(False).eval()

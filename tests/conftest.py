"""Shared fixtures: offline environment, a tiny random latent-diffusion model folder, the Hydra config dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
torch.set_num_threads(min(2, torch.get_num_threads()))

ROOT = Path(__file__).resolve().parents[1]
TINY_AE = {"block_out_channels": [8, 16], "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 4}
TINY_UNET = {"block_out_channels": [16, 32], "layers_per_block": 1, "down_block_types": ["DownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 8}


def build_tiny_ldm(image_size: int = 32):
    """A random tiny AutoencoderKL (f = 2) + UNet2DModel wrapped as a LatentDiffusion."""
    from diffusers import UNet2DModel

    from flashdiff.diffusion import LatentDiffusion
    from flashdiff.train.commands import build_autoencoder

    torch.manual_seed(0)
    ae = build_autoencoder(TINY_AE, image_size)
    unet = UNet2DModel(sample_size=image_size // 2, in_channels=4, out_channels=4, **TINY_UNET)
    return LatentDiffusion(ae, unet, scale_factor=1.5)


@pytest.fixture(scope="session")
def tiny_ldm_dir(tmp_path_factory) -> Path:
    """A model folder (vae/, unet/) written by save_pretrained, loadable with model.path=<it>."""
    path = tmp_path_factory.mktemp("tiny_ldm")
    build_tiny_ldm().save_pretrained(path)
    return path

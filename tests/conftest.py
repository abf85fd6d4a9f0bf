"""Shared fixtures: offline environment, a tiny random latent-diffusion model folder, the Hydra config dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# Under `make test` (two pytest-xdist workers on two cores) each worker keeps to one thread: no oversubscription.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))

ROOT = Path(__file__).resolve().parents[1]
TINY_AE = {"block_out_channels": [8, 16], "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 4}
TINY_UNET = {"block_out_channels": [16, 32], "layers_per_block": 1, "down_block_types": ["DownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 8}
TINY_SWINIR = {"embed_dim": 12, "depths": [2], "num_heads": [2], "window_size": 4, "img_size": 32, "mlp_ratio": 1.0}


def build_tiny_ldm(image_size: int = 32):
    """A random tiny AutoencoderKL (f = 2) + UNet2DModel wrapped as a LatentDiffusion."""
    from diffusers import UNet2DModel

    from flashdiff.diffusion import LatentDiffusion
    from flashdiff.train.commands import build_autoencoder

    torch.manual_seed(0)
    ae = build_autoencoder(TINY_AE, image_size)
    unet = UNet2DModel(sample_size=image_size // 2, in_channels=4, out_channels=4, **TINY_UNET)
    return LatentDiffusion(ae, unet, scale_factor=1.5)


class AnalyticLDM(torch.nn.Module):
    """Identity autoencoder (z = 2x - 1) with a Gaussian latent prior z0 ~ N(mu, s^2 I): exact eps is known."""

    def __init__(self, mu: float = 0.2, s: float = 0.5, shape: tuple[int, int, int] = (3, 8, 8)) -> None:
        from flashdiff.diffusion import Schedule

        super().__init__()
        self.mu, self.s, self.latent_shape, self.schedule = mu, s, shape, Schedule.ldm()
        self.eps_rows = 0  # score-model rows evaluated

    def encode(self, x):
        return 2.0 * x - 1.0

    def decode(self, z):
        return (z + 1.0) / 2.0

    def eps(self, z_i, i):
        self.eps_rows += z_i.shape[0]
        a, b = self.schedule.a(i).view(-1, 1, 1, 1), self.schedule.b(i).view(-1, 1, 1, 1)
        return b * (z_i - a * self.mu) / (a**2 * self.s**2 + b**2)  # E[eps | z_i]


@pytest.fixture(scope="session")
def tiny_ldm_dir(tmp_path_factory) -> Path:
    """A model folder (vae/, unet/) written by save_pretrained, loadable with model.path=<it>."""
    path = tmp_path_factory.mktemp("tiny_ldm")
    build_tiny_ldm().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A severity encoder folder initialised from the tiny LDM (untrained), loadable as severity_encoder=<it>."""
    from flashdiff.severity import SeverityEncoder

    path = tmp_path_factory.mktemp("tiny_encoder")
    SeverityEncoder.from_latent_diffusion(build_tiny_ldm()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_swinir_dir(tmp_path_factory) -> Path:
    """A tiny random SwinIR folder, loadable as solver.network.folder=<it> (solver=swinir)."""
    from flashdiff.solvers.swinir import SwinIRRestorer

    path = tmp_path_factory.mktemp("tiny_swinir")
    torch.manual_seed(0)
    SwinIRRestorer(TINY_SWINIR).save_pretrained(path)
    return path


def run(solver, model, op, y, params, z, nfe, gens, **engine):
    """Sample b's last ``nfe[b]`` grid steps of ``solver`` from ``z[b]`` through the engine (after ``solver.check``)."""
    from flashdiff.engine import sample

    solver.check(model, op)
    return sample(model, solver, z, nfe, gens, op=op, y=y, params=params, **engine)

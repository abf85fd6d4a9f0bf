"""The training commands behind ``python -m flashdiff.train``: toy autoencoder and toy latent DDPM."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DModel
from torch.utils.data import Dataset

from flashdiff.diffusion.model import LatentDiffusion, PixelDiffusion
from flashdiff.diffusion.schedule import ldm_scheduler
from flashdiff.train.autoencoder import AutoencoderObjective, latent_scale, reconstruction_psnr
from flashdiff.train.latent_ddpm import LatentDDPMObjective
from flashdiff.train.loop import LoopSettings, fit

log = logging.getLogger(__name__)


def record_training(folder: Path, workdir: str | Path, result: dict, settings: LoopSettings,
                    arch: dict[str, Any]) -> None:
    """``training.json`` beside the weights: what was trained, how, on what machine, and how long it took."""
    state = json.loads((Path(workdir) / "checkpoint" / "state.json").read_text())
    info = result | {"train_seconds": state["seconds"], "steps": state["step"], "settings": asdict(settings),
                     "arch": arch, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                                f"{torch.get_num_threads()} threads"}
    (folder / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def build_autoencoder(arch: dict[str, Any], image_size: int) -> AutoencoderKL:
    """An AutoencoderKL with one down/up block per entry of ``arch["block_out_channels"]``."""
    n = len(arch["block_out_channels"])
    return AutoencoderKL(in_channels=3, out_channels=3, sample_size=image_size,
                         down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                         **arch)


def train_autoencoder(arch: dict[str, Any], kl_weight: float, settings: LoopSettings, train_set: Dataset,
                      val_set: Dataset, output_dir: str | Path, workdir: str | Path, run: Any = None) -> dict:
    """Train E0/D0, set its latent scale factor, save ``<output_dir>/vae``; returns measured numbers."""
    started = time.perf_counter()
    autoencoder = build_autoencoder(arch, train_set[0]["x"].shape[-1])
    fit(AutoencoderObjective(autoencoder, kl_weight), train_set, settings, workdir, run=run, desc="autoencoder")
    ldm = LatentDiffusion(autoencoder, None, latent_scale(autoencoder, train_set))
    ldm.save_pretrained(output_dir)
    result = {"seconds": time.perf_counter() - started, "scale_factor": ldm.scale_factor,
              "parameters": sum(p.numel() for p in autoencoder.parameters()),
              "val_psnr": reconstruction_psnr(ldm, val_set).mean().item()}
    record_training(Path(output_dir) / "vae", workdir, result, settings, arch)
    log.info("autoencoder saved to %s/vae: %s", output_dir, json.dumps(result))
    if run is not None:
        run.summary.update({f"autoencoder/{k}": v for k, v in result.items()})
    return result


def train_latent_ddpm(arch: dict[str, Any], settings: LoopSettings, ldm: LatentDiffusion, train_set: Dataset,
                      output_dir: str | Path, workdir: str | Path, run: Any = None) -> dict:
    """Train eps_theta on the frozen autoencoder's latents; save ``<output_dir>/unet`` and ``/scheduler``.

    With a ``PixelDiffusion`` (identity autoencoder) this trains a pixel DDPM on its own schedule.
    """
    started = time.perf_counter()
    c, h, _ = ldm.latent_shape
    unet = UNet2DModel(sample_size=h, in_channels=c, out_channels=c, **arch)
    name = "pixel_ddpm" if isinstance(ldm, PixelDiffusion) else "latent_ddpm"
    unet = fit(LatentDDPMObjective(unet, ldm), train_set, settings, workdir, run=run, desc=name).unet
    unet.save_pretrained(Path(output_dir) / "unet", safe_serialization=True)
    (ldm.scheduler if isinstance(ldm, PixelDiffusion) else ldm_scheduler()).save_pretrained(
        Path(output_dir) / "scheduler")
    result = {"seconds": time.perf_counter() - started, "parameters": sum(p.numel() for p in unet.parameters())}
    record_training(Path(output_dir) / "unet", workdir, result, settings, arch)
    log.info("%s saved to %s/unet: %s", name, output_dir, json.dumps(result))
    if run is not None:
        run.summary.update({f"{name}/{k}": v for k, v in result.items()})
    return result

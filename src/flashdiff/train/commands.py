"""The trainers of ``conf/train/autoencoder.yaml``, ``latent_ddpm.yaml`` and ``pixel_ddpm.yaml``, and the record
``training.json`` every trainer writes beside its model."""

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

from flashdiff.diffusion.model import LatentDiffusion, PixelDiffusion
from flashdiff.diffusion.schedule import ldm_scheduler
from flashdiff.train.autoencoder import AutoencoderObjective, latent_scale, reconstruction_psnr
from flashdiff.train.latent_ddpm import LatentDDPMObjective, LatentFlowObjective
from flashdiff.train.loop import LoopSettings, TrainingJob, fit

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


def train_autoencoder(job: TrainingJob, *, arch: dict[str, Any], kl_weight: float, loop: LoopSettings) -> dict:
    """Train E0/D0 (``conf/train/autoencoder.yaml``), set its latent scale factor, save ``<output_dir>/vae``;
    returns measured numbers."""
    started = time.perf_counter()
    autoencoder = build_autoencoder(arch, job.train_set[0]["x"].shape[-1])
    fit(AutoencoderObjective(autoencoder, kl_weight), job.train_set, loop, job.workdir, run=job.run,
        desc="autoencoder")
    ldm = LatentDiffusion(autoencoder, None, latent_scale(autoencoder, job.train_set))
    ldm.save_pretrained(job.output_dir)
    result = {"seconds": time.perf_counter() - started, "scale_factor": ldm.scale_factor,
              "parameters": sum(p.numel() for p in autoencoder.parameters()),
              "val_psnr": reconstruction_psnr(ldm, job.val_set).mean().item()}
    record_training(Path(job.output_dir) / "vae", job.workdir, result, loop, arch)
    log.info("autoencoder saved to %s/vae: %s", job.output_dir, json.dumps(result))
    if job.run is not None:
        job.run.summary.update({f"autoencoder/{k}": v for k, v in result.items()})
    return result


def train_latent_ddpm(job: TrainingJob, model: LatentDiffusion, *, arch: dict[str, Any], loop: LoopSettings,
                      objective: str = "ddpm", flow_shift: float = 1.0) -> dict:
    """Train the latent prior on the frozen autoencoder's latents; save ``<output_dir>/unet`` and ``/scheduler``:
    ``objective="ddpm"`` an ε-predictor on the LDM schedule (with a ``PixelDiffusion``, the identity autoencoder, a
    pixel DDPM on its own schedule); ``"flow"`` a rectified-flow velocity predictor, saved with diffusers'
    ``FlowMatchEulerDiscreteScheduler`` of ``flow_shift`` (``conf/train/latent_flow.yaml``).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    if objective not in ("ddpm", "flow"):
        raise ValueError(f"train.objective must be 'ddpm' or 'flow', got {objective!r}")
    started = time.perf_counter()
    c, h, _ = model.latent_shape
    unet = UNet2DModel(sample_size=h, in_channels=c, out_channels=c, **arch)
    name = "pixel_ddpm" if isinstance(model, PixelDiffusion) else f"latent_{objective}"
    build = LatentFlowObjective if objective == "flow" else LatentDDPMObjective
    unet = fit(build(unet, model), job.train_set, loop, job.workdir, run=job.run, desc=name).unet
    unet.save_pretrained(Path(job.output_dir) / "unet", safe_serialization=True)
    if objective == "flow":
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=flow_shift)
    else:
        scheduler = model.scheduler if isinstance(model, PixelDiffusion) else ldm_scheduler()
    scheduler.save_pretrained(Path(job.output_dir) / "scheduler")
    result = {"seconds": time.perf_counter() - started, "parameters": sum(p.numel() for p in unet.parameters())}
    record_training(Path(job.output_dir) / "unet", job.workdir, result, loop, arch)
    log.info("%s saved to %s/unet: %s", name, job.output_dir, json.dumps(result))
    if job.run is not None:
        job.run.summary.update({f"{name}/{k}": v for k, v in result.items()})
    return result

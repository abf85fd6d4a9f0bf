"""Hydra entry points ``python -m flashdiff`` and ``python -m flashdiff.train``; the only module seeing a DictConfig."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = str(ROOT / "conf")
OmegaConf.register_new_resolver("flashdiff_root", lambda: str(ROOT), replace=True)

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as torch understands it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device} but no CUDA device is visible; use device=cpu or device=auto")
    return torch.device(device)


def _start_logger(cfg: DictConfig, job_type: str):
    """A wandb run from the ``logger`` group, configured with the whole resolved config."""
    from flashdiff.tracking import start_run

    config = OmegaConf.to_container(cfg, resolve=True)
    return start_run(cfg.logger.mode, cfg.logger.project, entity=cfg.logger.entity, group=cfg.logger.group,
                     tags=list(cfg.logger.tags), job_type=job_type, config=config,
                     directory=hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Reconstruct the test set and write per-image records (see ``flashdiff.evaluate``)."""
    from flashdiff.evaluate import evaluate

    run = _start_logger(cfg, "reconstruction")
    try:
        evaluate(cfg=cfg, device=resolve_device(cfg.device), run=run)
    finally:
        run.finish()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="training")
def train(cfg: DictConfig) -> None:
    """Train the model named by ``train.name`` (conf/train/)."""
    from hydra.utils import instantiate

    from flashdiff.diffusion import PixelDiffusion, pixel_scheduler
    from flashdiff.train.commands import train_autoencoder, train_latent_ddpm
    from flashdiff.train.loop import LoopSettings
    from flashdiff.train.severity import train_severity_encoder
    from flashdiff.train.swinir import train_swinir

    settings = LoopSettings(**OmegaConf.to_container(cfg.train.loop, resolve=True))
    arch = OmegaConf.to_container(cfg.train.arch, resolve=True) if "arch" in cfg.train else {}
    train_set, val_set = instantiate(cfg.dataset), instantiate(cfg.dataset, split="val")
    out, workdir = cfg.train.output_dir, cfg.train.workdir
    run = _start_logger(cfg, f"train-{cfg.train.name}")
    try:
        if cfg.train.name == "autoencoder":
            train_autoencoder(arch, cfg.train.kl_weight, settings, train_set, val_set, out, workdir, run)
        elif cfg.train.name == "latent_ddpm":
            ldm = instantiate(cfg.model, unet_subfolder=None)
            train_latent_ddpm(arch, settings, ldm, train_set, out, workdir, run)
        elif cfg.train.name == "pixel_ddpm":  # the same trainer on pixels (identity autoencoder)
            pixels = PixelDiffusion(None, pixel_scheduler(), sample_size=int(cfg.dataset.size))
            train_latent_ddpm(arch, settings, pixels, train_set, out, workdir, run)
        elif cfg.train.name == "severity":
            ldm = instantiate(cfg.model, unet_subfolder=None)
            train_severity_encoder(ldm, instantiate(cfg.train.operator), settings, train_set, val_set, out, workdir,
                                   lambda_sigma=cfg.train.lambda_sigma, lambda_im=cfg.train.lambda_im,
                                   head_lr_mult=cfg.train.head_lr_mult, detach_target=cfg.train.detach_target,
                                   head_context=cfg.train.head_context, head_stop_grad=cfg.train.head_stop_grad,
                                   head_features=cfg.train.head_features, run=run,
                                   test_set=instantiate(cfg.dataset, split="test"),
                                   max_val_images=cfg.train.max_val_images)
        elif cfg.train.name == "swinir":
            train_swinir(arch, instantiate(cfg.train.operator), settings, train_set, val_set, out, workdir, run=run,
                         max_val_images=cfg.train.max_val_images, identity_init=cfg.train.identity_init)
        else:
            raise ValueError(f"train={cfg.train.name}: unknown training command (see conf/train/)")
    finally:
        run.finish()

"""Tiny checkpoints in the original latent-diffusion layout, built from ``tests/convert/original.py``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from tests.convert.original import SevEncoder, UNetModel, VQFirstStage, ldm_betas

DDCONFIG = {"double_z": False, "z_channels": 3, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
            "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
FIRST_STAGE = {"target": "ldm.models.autoencoder.VQModelInterface",
               "params": {"embed_dim": 3, "n_embed": 16, "ddconfig": DDCONFIG,
                          "lossconfig": {"target": "torch.nn.Identity"}}}


def unet_params(attention_resolutions: list[int]) -> dict:
    return {"image_size": 16, "in_channels": 3, "out_channels": 3, "model_channels": 32,
            "attention_resolutions": attention_resolutions, "num_res_blocks": 1, "channel_mult": [1, 2],
            "num_head_channels": 16}


def ldm_config(attention_resolutions: list[int] = (2,), **overrides) -> dict:
    """A latent-diffusion config.yaml (as dict) with tiny channels and the paper's schedule."""
    params = {"linear_start": 0.0015, "linear_end": 0.0195, "num_timesteps_cond": 1, "log_every_t": 200,
              "timesteps": 1000, "first_stage_key": "image", "image_size": 16, "channels": 3,
              "monitor": "val/loss_simple_ema",
              "unet_config": {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                              "params": unet_params(list(attention_resolutions))},
              "first_stage_config": FIRST_STAGE, "cond_stage_config": "__is_unconditional__"} | overrides
    return {"model": {"base_learning_rate": 2.0e-06, "target": "ldm.models.diffusion.ddpm.LatentDiffusion",
                      "params": params}}


def never_called(*args):
    """Stands for any code a checkpoint could name: loading must never call it."""
    raise AssertionError("a checkpoint's pickled callable was executed")


class LightningCallback:
    """Stands for a Lightning class that old checkpoints pickle as a dict key."""


class Pickled:
    def __reduce__(self):
        return never_called, ("payload",)


def lightning_extras() -> dict:
    """Non-tensor parts of a Lightning checkpoint: classes, objects, namespaces (to be stripped, never run)."""
    return {"epoch": 3, "global_step": 1234, "pytorch-lightning_version": "1.4.2",
            "callbacks": {LightningCallback: {"best_model_score": torch.tensor(0.1), "dirpath": "/logs"}},
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 1e-4}]}],
            "lr_schedulers": [], "trap": Pickled(), "namespace": argparse.Namespace(lr=1e-4)}


def write_ldm(folder: Path, *, attention_resolutions=(2,), ema: bool = True, config_overrides: dict | None = None,
              seed: int = 0) -> dict:
    """``folder/model.ckpt`` + ``folder/config.yaml``; returns the reference modules (first_stage, unet, ema_unet)."""
    torch.manual_seed(seed)
    config = ldm_config(attention_resolutions, **(config_overrides or {}))
    params = config["model"]["params"]
    first_stage = VQFirstStage(DDCONFIG, 3, 16).eval()
    unet = UNetModel(**params["unet_config"]["params"]).eval()
    sd = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    sd |= {f"first_stage_model.{k}": v for k, v in first_stage.state_dict().items()}
    betas = ldm_betas()
    sd |= {"betas": betas.float(), "alphas_cumprod": torch.cumprod(1 - betas, 0).float(), "logvar": torch.zeros(1000)}
    modules = {"first_stage": first_stage, "unet": unet, "ema_unet": None}
    if ema:
        ema_unet = UNetModel(**params["unet_config"]["params"]).eval()  # other random weights: the EMA copy
        sd |= {"model_ema." + f"diffusion_model.{k}".replace(".", ""): v for k, v in ema_unet.state_dict().items()}
        sd |= {"model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(10, dtype=torch.int)}
        modules["ema_unet"] = ema_unet
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": sd} | lightning_extras(), folder / "model.ckpt")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return modules


def write_severity(path: Path, *, light: bool, seed: int = 0) -> SevEncoder:
    """One of the authors' severity-encoder checkpoints (full Lightning or "light"); returns the reference."""
    torch.manual_seed(seed)
    encoder = SevEncoder(DDCONFIG, 3).eval()
    operator = {"type": "gaussian_blur", "kernel_size": 61, "max_std": 3.0}
    noise = {"sigma_min": 0.05, "sigma_max": 0.05}
    if light:
        ckpt = {"state_dict": encoder.state_dict(),
                "hyper_parameters": {"operator_config": operator, "noise_config": noise, "model_config": FIRST_STAGE}}
    else:
        sd = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
        sd |= {f"pretrained_autoencoder.{k}": v for k, v in VQFirstStage(DDCONFIG, 3, 16).state_dict().items()}
        hparams = {"operator_config": operator, "noise_config": noise, "ldm_model_ckpt_path": "/authors/model.ckpt",
                   "ldm_model_config_path": "/authors/config.yaml", "sev_encoder_config_path": None, "lr": 1e-4,
                   "sigma_reg": 10.0, "img_space_reg": 1.0}
        ckpt = {"state_dict": sd, "hyper_parameters": hparams, "hparams_name": "kwargs"} | lightning_extras()
    torch.save(ckpt, path)
    return encoder

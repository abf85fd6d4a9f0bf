"""An original latent-diffusion checkpoint (``model.ckpt`` + ``config.yaml``) -> a diffusers folder flashdiff loads.

The folder holds ``vqvae/`` (VQModel, ``scaling_factor`` from the checkpoint: 1.0 for the paper's LDMs),
``unet/`` (UNet2DModel; the EMA weights ``model_ema.*`` when the checkpoint has them), ``scheduler/`` (the
METHOD.md §1 DDPM schedule, checked against the checkpoint's) and ``conversion.json`` (provenance).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from flashdiff.convert.architectures import HERE as ARCHITECTURES
from flashdiff.convert.checkpoint import load_checkpoint, tensors_of
from flashdiff.convert.mapping import ConversionError
from flashdiff.convert.unet import unet_config, unet_state_dict
from flashdiff.convert.vq import vq_config, vq_state_dict

if TYPE_CHECKING:  # torch, diffusers and the schedule are imported where used: a bad file is refused before them
    from torch import Tensor, nn

log = logging.getLogger(__name__)

UNET, EMA, FIRST_STAGE = "model.diffusion_model.", "model_ema.", "first_stage_model."
LDM_TARGET = "ldm.models.diffusion.ddpm.LatentDiffusion"
LDM_VQ4_CONFIG = ARCHITECTURES / "ldm_vq4_config.json"  # the paper's three LDMs share it (json is yaml)


def read_config(path: str | Path) -> dict[str, Any]:
    """``model.params`` of a latent-diffusion ``config.yaml`` (plain yaml, no code)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file (latent-diffusion keeps it as "
                                "models/ldm/<name>/config.yaml in its repository; pass --config)")
    try:
        cfg = yaml.safe_load(path.read_text())
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConversionError(f"{path}: not a YAML config ({' '.join(str(err).split())})") from err
    try:
        model = cfg["model"]
        return {"target": model.get("target"), **model["params"]}
    except (KeyError, TypeError) as err:
        raise ConversionError(f"{path}: not a latent-diffusion config (no model.params)") from err


def check_schedule(params: dict[str, Any], sd: dict[str, Tensor]) -> None:
    """Refuse a checkpoint whose diffusion schedule is not METHOD.md §1's (ldm "linear" 0.0015 -> 0.0195, 1000, ε)."""
    import torch

    from flashdiff.diffusion.schedule import LDM_BETA_END, LDM_BETA_START, LDM_NUM_STEPS, Schedule

    got = {"timesteps": params.get("timesteps", 1000), "linear_start": params.get("linear_start", 1e-4),
           "linear_end": params.get("linear_end", 2e-2), "beta_schedule": params.get("beta_schedule", "linear"),
           "parameterization": params.get("parameterization", "eps")}
    want = {"timesteps": LDM_NUM_STEPS, "linear_start": LDM_BETA_START, "linear_end": LDM_BETA_END,
            "beta_schedule": "linear", "parameterization": "eps"}
    wrong = {k: v for k, v in got.items() if not (v == want[k] or (isinstance(v, float) and math.isclose(v, want[k])))}
    if wrong:
        raise ConversionError(f"config has {wrong}; flashdiff's LatentDiffusion uses the LDM schedule {want} "
                              "(METHOD.md §1)")
    if "betas" in sd and not torch.allclose(sd["betas"].double(), Schedule.ldm().betas, rtol=1e-5, atol=1e-8):
        raise ConversionError("the checkpoint's betas buffer differs from the LDM schedule of its config")


def unet_weights(sd: dict[str, Tensor], use_ema: bool = True) -> tuple[dict[str, Tensor], bool]:
    """The UNet's weights (prefix stripped): the EMA copy ``model_ema.<name without dots>`` if present and wanted.

    ldm's ``LitEma`` stores ``model.diffusion_model.a.b`` as ``model_ema.diffusion_modela b`` with the dots removed.
    Returns (weights, whether they are the EMA ones).
    """
    raw = {k[len(UNET):]: v for k, v in sd.items() if k.startswith(UNET)}
    if not raw:
        raise ConversionError(f"no {UNET}* weights: not a latent-diffusion checkpoint")
    has_ema = any(k.startswith(EMA) and k not in (f"{EMA}decay", f"{EMA}num_updates") for k in sd)
    if not (use_ema and has_ema):
        log.info("UNet: raw weights (%s)", "EMA present but not wanted" if has_ema else "the checkpoint has no EMA")
        return raw, False
    ema_key = {name: EMA + ("diffusion_model." + name).replace(".", "") for name in raw}
    missing = [name for name, key in ema_key.items() if key not in sd]
    if missing:
        raise ConversionError(f"the EMA copy lacks {len(missing)} of {len(raw)} UNet weights (e.g. {missing[:3]}); "
                              "convert the raw weights with --no-ema")
    log.info("UNet: EMA weights (%d tensors)", len(raw))
    return {name: sd[key] for name, key in ema_key.items()}, True


def load_into(model: nn.Module, sd: dict[str, Tensor], what: str) -> None:
    """``model.load_state_dict`` as float32, every key required; ConversionError naming what does not fit."""
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ConversionError(f"{what}: the checkpoint does not fit the architecture of its config: {err}") from err
    if missing or unexpected:
        raise ConversionError(f"{what}: missing {sorted(missing)[:6]}, unexpected {sorted(unexpected)[:6]}")


def convert_ldm(ckpt: str | Path, out: str | Path, *, config: str | Path | None = None, use_ema: bool = True) -> Path:
    """Write the diffusers folder for ``ckpt`` to ``out``.

    ``config`` defaults to the ``config.yaml`` beside the checkpoint, else the LDM-VQ-4 config the paper's three
    LDMs share (latent-diffusion keeps it in its repository, not in the zips).
    """
    ckpt, out = Path(ckpt).expanduser(), Path(out).expanduser()
    if config is None:
        config = ckpt.parent / "config.yaml" if (ckpt.parent / "config.yaml").is_file() else LDM_VQ4_CONFIG
        log.info("config: %s", config)
    config = Path(config).expanduser()
    params = read_config(config)
    if params["target"] != LDM_TARGET or params.get("cond_stage_config", "__is_unconditional__") != \
            "__is_unconditional__":
        raise ConversionError(f"{config}: model is {params['target']} with cond_stage_config "
                              f"{params.get('cond_stage_config')!r}; only unconditional {LDM_TARGET} is supported")
    sd = tensors_of(load_checkpoint(ckpt), ckpt)
    check_schedule(params, sd)
    from diffusers import UNet2DModel, VQModel  # only once the files are known to be readable

    from flashdiff.diffusion.schedule import ldm_scheduler

    scale = float(sd["scale_factor"]) if "scale_factor" in sd else float(params.get("scale_factor", 1.0))
    vq_cfg, unet_cfg = vq_config(params["first_stage_config"], scale), unet_config(params["unet_config"])
    vq = VQModel.from_config(vq_cfg)
    first_stage = {k[len(FIRST_STAGE):]: v for k, v in sd.items() if k.startswith(FIRST_STAGE)}
    load_into(vq, vq_state_dict(first_stage, vq_cfg), "first stage (VQ)")
    unet = UNet2DModel.from_config(unet_cfg)
    weights, ema = unet_weights(sd, use_ema)
    load_into(unet, unet_state_dict(weights, params["unet_config"]["params"]), "UNet")
    ignored = sorted({k.split(".")[0] for k in sd if not k.startswith((UNET, EMA, FIRST_STAGE))})
    log.info("not converted (schedule buffers and training state): %s", ", ".join(ignored) or "nothing")
    out.mkdir(parents=True, exist_ok=True)
    vq.save_pretrained(out / "vqvae", safe_serialization=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    ldm_scheduler().save_pretrained(out / "scheduler")
    record = {"source": str(ckpt.resolve()), "config": str(config.resolve()), "ema": ema, "scale_factor": scale,
              "unet_parameters": sum(p.numel() for p in unet.parameters()),
              "vq_parameters": sum(p.numel() for p in vq.parameters())}
    (out / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("wrote %s (vqvae/, unet/, scheduler/; EMA %s, scale factor %g)", out, ema, scale)
    return out

"""The authors' released severity encoders (Lightning ``.ckpt``) -> flashdiff's severity-encoder folder.

Two layouts (reference_impl.md §1.4): the full Lightning checkpoint of ``SeverityEncoderModule`` (the encoder
under ``encoder.encoder.*``, ``encoder.quant_conv.*``, the σ head ``encoder.std_conv.*``; the frozen
``pretrained_autoencoder.*`` and any operator weights are not needed), and the "light" checkpoint with those
three under ``encoder.*``, ``quant_conv.*``, ``std_conv.*`` and the first-stage config in
``hyper_parameters.model_config``. ``σ̂² = mean (std_conv(ẑ))²`` is exactly flashdiff's 1×1 head.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flashdiff.convert.architectures import architecture
from flashdiff.convert.checkpoint import load_checkpoint, plain, tensors_of
from flashdiff.convert.ldm import load_into, read_config
from flashdiff.convert.mapping import ConversionError
from flashdiff.convert.vq import vq_config, vq_state_dict

log = logging.getLogger(__name__)

LIGHTNING_PREFIX = "encoder."  # SeverityEncoderModule.encoder is the LDMSevEncoder


def first_stage(hparams: dict[str, Any], ldm_config: str | Path | None, scale_factor: float) -> dict[str, Any]:
    """diffusers VQModel config of the encoder: the light ckpt's ``model_config``, else ``ldm_config``'s, else VQ-f4."""
    if isinstance(hparams.get("model_config"), dict) and "target" in hparams["model_config"]:
        log.info("architecture from the checkpoint's hyper_parameters.model_config")
        return vq_config(plain(hparams["model_config"]), scale_factor)
    if ldm_config is not None:
        log.info("architecture from %s", ldm_config)
        return vq_config(read_config(ldm_config)["first_stage_config"], scale_factor)
    log.info("architecture: VQ-f4 of the paper's LDMs (pass --ldm-config for another)")
    return architecture("vq_f4") | {"scaling_factor": float(scale_factor)}


def convert_severity_encoder(ckpt: str | Path, out: str | Path, *, ldm_config: str | Path | None = None,
                             scale_factor: float = 1.0) -> Path:
    """Write ``out/config.json`` + ``out/model.safetensors`` (``SeverityEncoder.from_pretrained`` loads it).

    ``scale_factor`` is the LDM's (1.0 for the paper's), so that ẑ is in ``LatentDiffusion.encode`` units.
    """
    ckpt, out = Path(ckpt).expanduser(), Path(out).expanduser()
    raw = load_checkpoint(ckpt)
    sd = tensors_of(raw, ckpt)
    hparams = raw.get("hyper_parameters") if isinstance(raw.get("hyper_parameters"), dict) else {}
    if f"{LIGHTNING_PREFIX}std_conv.weight" in sd:  # the full Lightning checkpoint
        skipped = sorted({k.split(".")[0] for k in sd if not k.startswith(LIGHTNING_PREFIX)})
        log.info("full Lightning checkpoint; not needed: %s", ", ".join(skipped) or "nothing")
        sd = {k[len(LIGHTNING_PREFIX):]: v for k, v in sd.items() if k.startswith(LIGHTNING_PREFIX)}
    if "std_conv.weight" not in sd:
        raise ConversionError(f"{ckpt}: no σ head (std_conv) found, neither under encoder.std_conv nor std_conv: "
                              "not one of the authors' severity-encoder checkpoints")
    config = {k: v for k, v in first_stage(hparams, ldm_config, scale_factor).items() if not k.startswith("_")}
    head = {"head.weight": sd.pop("std_conv.weight"), "head.bias": sd.pop("std_conv.bias")}
    from diffusers import VQModel  # only once the files are known to be readable

    from flashdiff.severity.encoder import ConvHead, SeverityEncoder

    ae = VQModel.from_config(config)
    model = SeverityEncoder(ae.encoder, ae.quant_conv, ConvHead, autoencoder_class="VQModel",
                            autoencoder_config=config, scale_factor=scale_factor)  # lr_mult 1: W stored as is
    load_into(model, vq_state_dict(sd, config, encoder_only=True) | head, "severity encoder")
    metadata = {"converted_from": str(ckpt.resolve()), "operator_config": plain(hparams.get("operator_config")),
                "noise_config": plain(hparams.get("noise_config"))}
    model.save_pretrained(out, metadata=metadata)
    log.info("wrote severity encoder %s (trained for operator %s)", out, metadata["operator_config"])
    return out

"""Converters from the original checkpoints to flashdiff folders (``python -m flashdiff.convert``).

``convert_ldm``: a latent-diffusion ``model.ckpt`` + ``config.yaml`` -> diffusers ``vqvae/``, ``unet/``,
``scheduler/`` (``model.path``). ``convert_severity_encoder``: the authors' severity-encoder ``.ckpt`` -> a
``SeverityEncoder`` folder (``severity_encoder``). Checkpoints are read with ``torch.load(weights_only=True)`` only.

The names below are imported on first use, and the modules import torch and diffusers only where they need them,
so that the command line refuses a file it cannot read (or a bad argument) before loading them.
"""

from importlib import import_module
from typing import Any

_HOMES = {"ConversionError": "mapping", "UnsafeCheckpointError": "checkpoint", "architecture": "architectures",
          "convert_ldm": "ldm", "convert_severity_encoder": "severity", "load_checkpoint": "checkpoint"}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)

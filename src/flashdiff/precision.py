"""Numeric precision of the networks (``precision: fp32 | bf16 | fp16``): autocast around UNet, decoder, encoder
forwards and the guidance backward; the schedule arithmetic (float64 coefficients), SNR matching and noise
correction stay in full precision, and the latents the engine keeps between steps stay float32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA (where supported), fp32 elsewhere; any other value is checked and returned."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision}: one of auto, {', '.join(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """``torch.autocast`` at ``precision`` on ``device``'s type; nothing for fp32."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield

"""Numeric precision of the networks (``precision: fp32 | bf16 | fp16``): autocast around UNet, decoder, encoder
forwards and the guidance backward; the schedule arithmetic (float64 coefficients), SNR matching and noise
correction stay in full precision, and the latents the engine keeps between steps stay float32. On CUDA, float32
matmuls and convolutions use TF32. Also the peak memory a run reports."""

from __future__ import annotations

import contextlib
import resource
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


def use_tf32(device: torch.device) -> None:
    """TF32 for float32 matmuls and convolutions on CUDA (Ampere and newer; ~1e-3 relative error, the default of
    most training code); nothing elsewhere."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def peak_memory(device: torch.device) -> dict[str, float | str]:
    """``peak_memory_gib`` of this process so far: CUDA's max allocated on ``device``, else the peak RSS."""
    if device.type == "cuda":
        return {"peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                "peak_memory_kind": "CUDA max_memory_allocated"}
    return {"peak_memory_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30,
            "peak_memory_kind": "peak RSS of the process"}

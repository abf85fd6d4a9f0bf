"""Host data onto the run's device without stalling it: built on the CPU (pinned where the device is CUDA) and sent
non-blocking, so the device queue keeps running while the host prepares the next step (STYLE.md, device
discipline). Elsewhere (CPU, the ``meta`` dry run of ``flashdiff.dryrun``) the same calls are plain copies."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def host_empty(shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tensor:
    """An uninitialised CPU tensor to fill on the host and send to ``device``: pinned where ``device`` is CUDA."""
    return torch.empty(tuple(shape), dtype=dtype, pin_memory=device.type == "cuda")


def to_device(host: Tensor, device: torch.device) -> Tensor:
    """``host`` (a CPU tensor) on ``device``; non-blocking from pinned memory where it is not the CPU.

    PyTorch's caching host allocator keeps a pinned block until its copy has run, so ``host`` may be dropped at once.
    """
    if device.type == "cpu":
        return host
    if device.type == "cuda" and not host.is_pinned():
        host = host.pin_memory()
    return host.to(device, non_blocking=True)


def index(values: Tensor | Sequence[int] | Sequence[Sequence[int]], device: torch.device) -> Tensor:
    """int64 indices built on the host (Python ints or a CPU tensor), on ``device`` in one non-blocking upload."""
    return to_device(torch.as_tensor(values, dtype=torch.int64), device)

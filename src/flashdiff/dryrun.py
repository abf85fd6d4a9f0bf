"""A GPU dry run on the CPU: PyTorch's ``meta`` device stands in for the GPU, and ``DeviceChecks`` watches every op.

On ``meta`` every op runs shape-only, so a host sync (``.item()``, ``.tolist()``, ``nonzero()``, ``bool(t)``,
``.cpu()``) raises there by itself. ``DeviceChecks`` adds what ``meta`` lets through and CUDA would not: an op whose
tensors sit on two devices (a CPU index into a device tensor, a CPU parameter in device math; a 0-dim CPU scalar is
allowed, as on CUDA), and it records every host-to-device upload, with whether it was non-blocking, so a test can
count them per engine step. Used by ``tests/test_dryrun.py``; usable on any new solver::

    model.to("meta")
    with DeviceChecks("meta") as checks:
        out = flashdiff.engine.sample(model, solver, z_start, nfe, generators, op=op, y=y, params=params)
    assert all(u.non_blocking for u in checks.uploads)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

SYNCS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
         torch.ops.aten.is_nonzero.default}
"""Ops that read a device tensor's values on the host (``.item()``, ``int()``, ``bool()``, ``nonzero()``)."""

COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}
"""Ops that move data between devices (``.to``, in-place assignment)."""

FROM_DATA = {torch.tensor, torch.as_tensor}
"""Factories that build a device tensor from host data: a blocking upload when given a device."""


class DeviceError(AssertionError):
    """A host sync or a mix of devices where only the run's device may appear."""


@dataclass(frozen=True)
class Upload:
    """One host-to-device copy: what did it and the shape, and whether it was non-blocking."""

    op: str
    shape: tuple[int, ...]
    non_blocking: bool


def _tensors(args: Any, kwargs: dict[str, Any]) -> list[torch.Tensor]:
    return [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]


class _Dispatch(TorchDispatchMode):
    def __init__(self, checks: DeviceChecks) -> None:
        super().__init__()
        self.checks = checks

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.checks.inspect(func, args, kwargs)
        return func(*args, **kwargs)


class _Function(TorchFunctionMode):
    def __init__(self, checks: DeviceChecks) -> None:
        super().__init__()
        self.checks = checks

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        device = kwargs.get("device")
        if func in FROM_DATA and device is not None and torch.device(device) == self.checks.device:
            self.checks.uploads.append(Upload(func.__name__, (), False))
        return func(*args, **kwargs)


class DeviceChecks:
    """Context manager: raise ``DeviceError`` on host syncs and device mixes, record uploads to ``device``."""

    def __init__(self, device: str | torch.device = "meta") -> None:
        self.device = torch.device(device)
        self.uploads: list[Upload] = []
        self._modes = (_Function(self), _Dispatch(self))

    def __enter__(self) -> DeviceChecks:
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)

    def inspect(self, func: Any, args: Any, kwargs: dict[str, Any]) -> None:
        """Check one aten op: no sync on the run's device, one device per op (copies aside: recorded)."""
        tensors = _tensors(args, kwargs)
        on_device = [t for t in tensors if t.device == self.device]
        if func in SYNCS and on_device:
            raise DeviceError(f"{func} reads a {self.device.type} tensor on the host (a sync on a GPU)")
        if func in COPIES:
            self._copy(func, tensors, kwargs)
            return
        devices = {t.device for t in tensors if not (t.device.type == "cpu" and t.dim() == 0)}
        if len(devices) > 1:
            shapes = [(t.device.type, tuple(t.shape)) for t in tensors]
            raise DeviceError(f"{func} mixes devices: {shapes}; move the host tensor to the run's device once")

    def _copy(self, func: Any, tensors: list[torch.Tensor], kwargs: dict[str, Any]) -> None:
        if func is torch.ops.aten._to_copy.default:
            src, dst = tensors[0].device, torch.device(kwargs.get("device") or tensors[0].device)
            shape = tuple(tensors[0].shape)
        else:  # copy_(self, src)
            src, dst, shape = tensors[1].device, tensors[0].device, tuple(tensors[1].shape)
        if src == self.device and dst.type == "cpu":
            raise DeviceError(f"{func} copies a {self.device.type} tensor {shape} to the host (a sync on a GPU)")
        if src.type == "cpu" and dst == self.device:
            self.uploads.append(Upload(str(func), shape, bool(kwargs.get("non_blocking", False))))

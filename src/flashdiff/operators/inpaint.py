"""Random inpainting ``A x = m * x``: per-pixel mask shared by channels, severity * max_missing missing."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.operators.base import NoisyOperator, params_device, uniform
from flashdiff.types import Params

log = logging.getLogger(__name__)


class Inpainting(NoisyOperator):
    """Random inpainting: keep pixel (h, w) iff ``u_hw >= severity * max_missing``, ``u ~ U[0, 1]``."""

    def __init__(self, max_missing: float = 0.8, severity_range: Sequence[float] = (0.875, 1.0),
                 train_severity_range: Sequence[float] = (0.0, 1.0),
                 noise_std: float = 0.05) -> None:
        super().__init__(severity_range, train_severity_range, noise_std)
        if not 0.0 <= float(max_missing) <= 1.0:
            raise ValueError(f"max_missing must be in [0, 1], got {max_missing}")
        self.max_missing = float(max_missing)

    def draw(self, seeds: Tensor | None, shape: tuple[int, ...], *, train: bool = False,
             generator: torch.Generator | None = None) -> Params:
        """Params for (B, C, H, W): ``severity``, ``missing`` (B,), ``mask`` (B, 1, H, W)."""
        severity, gens = self._draw_severity(seeds, shape[0], train, generator)
        missing = severity * self.max_missing
        h, w = shape[-2:]
        u = [uniform((h, w), g).cpu() for g in gens]  # after the severity, from the same per-sample stream
        u = torch.stack(u) if u else torch.zeros(0, h, w)
        mask = (u >= missing[:, None, None]).float()[:, None]  # (B, 1, H, W)
        device = params_device(seeds, generator)
        return {"severity": severity.to(device), "missing": missing.to(device), "mask": mask.to(device)}

    def A(self, x: Tensor, params: Params) -> Tensor:
        """Masked image (B, C, H, W)."""
        return params["mask"].to(x) * x

    def A_adjoint(self, y: Tensor, params: Params) -> Tensor:
        """Transpose of ``A`` (the same mask), (B, C, H, W)."""
        return params["mask"].to(y) * y

    def extra_repr(self) -> str:
        """Constructor values for ``print(module)``."""
        return (f"max_missing={self.max_missing}, severity_range={self.severity_range}, "
                f"train_severity_range={self.train_severity_range}, noise_std={self.noise_std}")

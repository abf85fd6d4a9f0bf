"""Pure denoising: ``A = I``, severity 0, only the measurement noise ``noise_std``."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from flashdiff.operators.base import NoisyOperator, params_device
from flashdiff.types import Params

log = logging.getLogger(__name__)


class Identity(NoisyOperator):
    """``y = x + noise_std * n``; parameters hold only ``severity`` = 0."""

    def __init__(self, noise_std: float = 0.05) -> None:
        super().__init__((0.0, 0.0), (0.0, 0.0), noise_std)

    def draw(self, seeds: Tensor | None, shape: tuple[int, ...], *, train: bool = False,
             generator: torch.Generator | None = None) -> Params:
        """Params for a (B, C, H, W) batch: ``severity`` (B,) zeros."""
        return {"severity": torch.zeros(shape[0], device=params_device(seeds, generator))}

    def A(self, x: Tensor, params: Params) -> Tensor:
        """The image itself (B, C, H, W)."""
        return x

    def A_adjoint(self, y: Tensor, params: Params) -> Tensor:
        """The measurement itself (B, C, H, W)."""
        return y

    def extra_repr(self) -> str:
        """Constructor values for ``print(module)``."""
        return f"noise_std={self.noise_std}"

"""Small shared types: the operator and latent-model interfaces and the solver output. No logic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

Params = dict[str, Tensor]
"""Per-sample degradation parameters; always holds ``"severity"`` of shape ``(B,)`` in [0, 1]."""


class Operator(Protocol):
    """``y = A(x) + n`` on images in [0, 1], batched with per-sample parameters."""

    noise_std: float

    def draw(self, seeds: Tensor | None, shape: tuple[int, ...], *, train: bool = False,
             generator: torch.Generator | None = None) -> Params: ...

    def A(self, x: Tensor, params: Params) -> Tensor: ...

    def A_adjoint(self, y: Tensor, params: Params) -> Tensor: ...

    def measure(self, x: Tensor, params: Params, seeds: Tensor | None = None) -> Tensor: ...


COUNTERS = ("score_forwards", "backward_passes", "decoder_calls", "encoder_calls", "inner_iterations")
"""What a reverse step costs, counted per sample besides NFE (METHOD.md §4): the ``SolverOutput`` count fields."""


@dataclass
class SolverOutput:
    """Latents a solver returns, the reverse steps each sample actually ran (NFE) and what they cost."""

    latents: Tensor  # (B, C, h, w)
    nfe: Tensor  # (B,) int64, reverse diffusion steps run
    score_forwards: Tensor  # (B,) int64, rows through eps_theta
    backward_passes: Tensor  # (B,) int64, gradients taken (guidance steps, ReSample optimiser steps)
    decoder_calls: Tensor  # (B,) int64, rows through D0
    encoder_calls: Tensor  # (B,) int64, rows through E0 (GML-DPS, PSLD)
    inner_iterations: Tensor  # (B,) int64, ReSample's hard-data-consistency optimiser steps (0 for others)
    images: Tensor | None = None  # (B, 3, H, W) in [0, 1]: a pixel-space method's result (SwinIR), used instead of
    # decoding the latents


@dataclass
class Start:
    """Where each sample's reverse process starts: an adapter's output."""

    latents: Tensor  # (B, C, h, w), z_start
    steps: Tensor  # (B,) int64, reverse steps to run on the solver's grid (0 = none: latents are the result)
    t_start: list[int | None]  # training step (0..T-1) of z_start's noise level; None where no diffusion runs
    sigma2_hat: Tensor | None = None  # (B,) predicted severity, where an encoder gave one
    score_forwards: Tensor | None = None  # (B,) int64, eps_theta forwards the adapter spent (DDIM encoding)

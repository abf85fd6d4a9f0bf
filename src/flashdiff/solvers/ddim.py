"""Unguided DDIM sampling of the latent prior on an N-step grid with stochasticity δ (App. D, eq. 21)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import make_step, reverse_diffusion
from flashdiff.diffusion.steps import sampling_grid
from flashdiff.types import Operator, Params, SolverOutput


def ddim(model: LatentDiffusion, op: Operator | None, y: Tensor | None, params: Params | None, z_start: Tensor,
         start: Tensor, *, generators: Sequence[torch.Generator], num_steps: int = 100,
         delta: float = 0.0) -> SolverOutput:
    """DDIM from ``z_start`` (B, C, h, w) over each sample's last ``start`` (B,) of ``num_steps`` steps; y unused.

    δ = 0 is deterministic, δ = 1 DDPM-like. The last step lands on ``abar = 1`` (the clean latent).
    """
    grid = sampling_grid(model.schedule.num_steps, num_steps)
    return reverse_diffusion(model, z_start, start, grid, make_step(model.schedule, delta), generators)

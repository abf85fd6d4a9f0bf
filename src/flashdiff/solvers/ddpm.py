"""Unguided ancestral DDPM sampling of the latent prior from per-sample starts (the paper's 1000-step sampler)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import make_step, reverse_diffusion
from flashdiff.diffusion.steps import sampling_grid
from flashdiff.types import Operator, Params, SolverOutput


def ddpm(model: LatentDiffusion, op: Operator | None, y: Tensor | None, params: Params | None, z_start: Tensor,
         start: Tensor, *, generators: Sequence[torch.Generator], num_steps: int = 1000) -> SolverOutput:
    """Ancestral DDPM from ``z_start`` (B, C, h, w) over each sample's last ``start`` (B,) steps; y is not used.

    The unconditional prior: with ``adapter=none`` it draws samples of the model.
    """
    if num_steps != model.schedule.num_steps:
        raise ValueError(f"solver.num_steps={num_steps}: DDPM runs every step of the {model.schedule.num_steps}-step "
                         "schedule; use solver=ddim for a shorter grid")
    grid = sampling_grid(model.schedule.num_steps, num_steps)
    return reverse_diffusion(model, z_start, start, grid, make_step(model.schedule, None), generators)

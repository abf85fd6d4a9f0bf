"""The shared reverse-diffusion loop with per-sample starts: one descending grid, samples join at their own start."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.types import SolverOutput

Step = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
"""(z_i, eps, i, i_prev, noise) -> z_{i_prev} for the active rows; i, i_prev (A,), i_prev = -1 at the clean end."""


def randn_rows(generators: Sequence[torch.Generator], rows: Tensor, shape: Sequence[int], like: Tensor) -> Tensor:
    """Standard normal noise (len(rows), *shape), row r drawn from ``generators[rows[r]]``; on like's device/dtype."""
    noise = [torch.randn(tuple(shape), generator=generators[int(r)]) for r in rows]
    return torch.stack(noise).to(device=like.device, dtype=like.dtype)


@torch.no_grad()
def reverse_diffusion(model: LatentDiffusion, z_start: Tensor, start: Tensor, grid: Tensor, step: Step,
                      generators: Sequence[torch.Generator]) -> SolverOutput:
    """Run sample b's last ``start[b]`` steps of the descending ``grid`` from ``z_start[b]``; NFE = start (B,).

    ``start[b] = 0`` returns ``z_start[b]`` untouched; ``start[b] = len(grid)`` is a full run from the top.
    Only the rows active at a step are passed through the network (gather, step, scatter back).
    """
    num = grid.numel()
    if bool(((start < 0) | (start > num)).any()):
        raise ValueError(f"start must lie in [0, {num}] (the solver's num_steps), got {start.tolist()}")
    z = z_start.clone()  # (B, C, h, w)
    joins = num - start.to(z.device)  # grid position where each sample joins
    grid = grid.to(z.device)
    for k in range(int(joins.min().item()) if start.numel() else num, num):
        rows = (joins <= k).nonzero().squeeze(1)  # (A,) active samples
        i = grid[k].expand(rows.numel())
        i_prev = (grid[k + 1] if k + 1 < num else torch.tensor(-1, device=z.device)).expand(rows.numel())
        z_a = z[rows]
        eps = model.eps(z_a, i)
        noise = randn_rows(generators, rows, z.shape[1:], z)
        z[rows] = step(z_a, eps, i, i_prev, noise)
    return SolverOutput(latents=z, nfe=start.to(torch.int64).clone())

"""The shared reverse-diffusion loop with per-sample starts: one descending grid, samples join at their own start."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.schedule import Schedule
from flashdiff.diffusion.steps import ddim_step, ddpm_step, tweedie_z0
from flashdiff.types import SolverOutput

Step = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
"""(z_i, eps, i, i_prev, noise) -> z_{i_prev} for the active rows; i, i_prev (A,), i_prev = -1 at the clean end."""

Guidance = Callable[[Tensor, Tensor], Tensor]
"""(ẑ0 of the active rows (A, C, h, w), their batch rows (A,)) -> weighted per-sample loss (A,) to descend."""


def make_step(schedule: Schedule, delta: float | None) -> Step:
    """The unconditional step: ancestral DDPM (``delta=None``), else DDIM with stochasticity δ (App. D, eq. 21)."""
    if delta is None:
        return lambda z, eps, i, i_prev, noise: ddpm_step(schedule, z, eps, i, noise)
    return lambda z, eps, i, i_prev, noise: ddim_step(schedule, z, eps, i, i_prev, noise, delta)


def randn_rows(generators: Sequence[torch.Generator], rows: Tensor, shape: Sequence[int], like: Tensor) -> Tensor:
    """Standard normal noise (len(rows), *shape), row r drawn from ``generators[rows[r]]``; on like's device/dtype."""
    noise = [torch.randn(tuple(shape), generator=generators[int(r)]) for r in rows]
    return torch.stack(noise).to(device=like.device, dtype=like.dtype)


def guided_step(model: LatentDiffusion, step: Step, guidance: Guidance, z_i: Tensor, i: Tensor, i_prev: Tensor,
                noise: Tensor, rows: Tensor) -> Tensor:
    """``z_{i-1} = z'_{i-1} - ∇_{z_i} L(ẑ0(z_i))`` (METHOD.md §4): the gradient runs through the UNet and Tweedie."""
    with torch.enable_grad():
        z_i = z_i.detach().requires_grad_(True)
        eps = model.eps(z_i, i)
        loss = guidance(tweedie_z0(model.schedule, z_i, eps, i), rows)  # (A,), weights included
        (grad,) = torch.autograd.grad(loss.sum(), z_i)  # rows are independent: the sum's gradient is per sample
    return step(z_i.detach(), eps.detach(), i, i_prev, noise) - grad


@torch.no_grad()
def reverse_diffusion(model: LatentDiffusion, z_start: Tensor, start: Tensor, grid: Tensor, step: Step,
                      generators: Sequence[torch.Generator], guidance: Guidance | None = None) -> SolverOutput:
    """Run sample b's last ``start[b]`` steps of the descending ``grid`` from ``z_start[b]``; NFE = start (B,).

    ``start[b] = 0`` returns ``z_start[b]`` untouched; ``start[b] = len(grid)`` is a full run from the top.
    Only the rows active at a step are passed through the network (gather, step, scatter back). With
    ``guidance``, each step subtracts the gradient of the guidance loss w.r.t. ``z_i`` (no graph kept).
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
        noise = randn_rows(generators, rows, z.shape[1:], z)
        if guidance is None:
            z[rows] = step(z[rows], model.eps(z[rows], i), i, i_prev, noise)
        else:
            z[rows] = guided_step(model, step, guidance, z[rows], i, i_prev, noise, rows)
    return SolverOutput(latents=z, nfe=start.to(torch.int64).clone())

"""The shared reverse-diffusion loop with per-sample starts: one descending grid, samples join at their own start."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.schedule import Schedule
from flashdiff.diffusion.steps import ddim_step, ddpm_step, sampling_grid, tweedie_z0
from flashdiff.types import COUNTERS, SolverOutput

Step = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
"""(z_i, eps, i, i_prev, noise) -> z_{i_prev} for the active rows; i, i_prev (A,), i_prev = -1 at the clean end."""

Counts = dict[str, Tensor]
"""Per-sample work tallies (B,) int64 keyed by ``flashdiff.types.COUNTERS``; whoever does the work adds at its rows."""

Guidance = Callable[[Tensor, Tensor, Counts], Tensor]
"""(ẑ0 of the active rows (A, C, h, w), their batch rows (A,), counts) -> weighted per-sample loss (A,) to descend."""

Correction = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Counts], Tensor]
"""(z'_{i_prev}, ẑ0(z_i) (A, C, h, w), i, i_prev (A,), rows (A,), counts) -> z_{i_prev}, applied after each step."""


def make_step(schedule: Schedule, delta: float | None) -> Step:
    """The unconditional step: ancestral DDPM (``delta=None``), else DDIM with stochasticity δ (App. D, eq. 21)."""
    if delta is None:
        return lambda z, eps, i, i_prev, noise: ddpm_step(schedule, z, eps, i, noise)
    return lambda z, eps, i, i_prev, noise: ddim_step(schedule, z, eps, i, i_prev, noise, delta)


def grid_and_step(schedule: Schedule, num_steps: int, delta: float | None) -> tuple[Tensor, Step]:
    """A solver's descending grid (num_steps,) and step: DDPM over every step (``delta=None``) or DDIM with δ."""
    if delta is None and num_steps != schedule.num_steps:
        raise ValueError(f"solver.num_steps={num_steps} needs DDIM: set solver.delta (0 deterministic, 1 DDPM-like)")
    return sampling_grid(schedule.num_steps, num_steps), make_step(schedule, delta)


def randn_rows(generators: Sequence[torch.Generator], rows: Tensor, shape: Sequence[int], like: Tensor) -> Tensor:
    """Standard normal noise (len(rows), *shape), row r drawn from ``generators[rows[r]]``; on like's device/dtype."""
    noise = [torch.randn(tuple(shape), generator=generators[int(r)]) for r in rows]
    return torch.stack(noise).to(device=like.device, dtype=like.dtype)


def guided_step(model: LatentDiffusion, step: Step, guidance: Guidance, z_i: Tensor, i: Tensor, i_prev: Tensor,
                noise: Tensor, rows: Tensor, counts: Counts) -> tuple[Tensor, Tensor]:
    """``z_{i-1} = z'_{i-1} - ∇_{z_i} L(ẑ0(z_i))`` (METHOD.md §4), and ε; the gradient runs through UNet and Tweedie."""
    with torch.enable_grad():
        z_i = z_i.detach().requires_grad_(True)
        eps = model.eps(z_i, i)
        loss = guidance(tweedie_z0(model.schedule, z_i, eps, i), rows, counts)  # (A,), weights included
        (grad,) = torch.autograd.grad(loss.sum(), z_i)  # rows are independent: the sum's gradient is per sample
    counts["backward_passes"][rows] += 1
    return step(z_i.detach(), eps.detach(), i, i_prev, noise) - grad, eps.detach()


@torch.no_grad()
def reverse_diffusion(model: LatentDiffusion, z_start: Tensor, start: Tensor, grid: Tensor, step: Step,
                      generators: Sequence[torch.Generator], guidance: Guidance | None = None,
                      correction: Correction | None = None) -> SolverOutput:
    """Run sample b's last ``start[b]`` steps of the descending ``grid`` from ``z_start[b]``; NFE = start (B,).

    ``start[b] = 0`` returns ``z_start[b]`` untouched; ``start[b] = len(grid)`` is a full run from the top.
    Only the rows active at a step are passed through the networks (gather, step, scatter back). With
    ``guidance``, each step subtracts the gradient of the guidance loss w.r.t. ``z_i`` (no graph kept); a
    ``correction`` then maps the step's result (e.g. ReSample's data consistency). Costs are counted per sample.
    """
    num = grid.numel()
    if bool(((start < 0) | (start > num)).any()):
        raise ValueError(f"start must lie in [0, {num}] (the solver's num_steps), got {start.tolist()}")
    z = z_start.clone()  # (B, C, h, w)
    counts = {name: torch.zeros(z.shape[0], dtype=torch.int64, device=z.device) for name in COUNTERS}
    joins = num - start.to(z.device)  # grid position where each sample joins
    grid = grid.to(z.device)
    for k in range(int(joins.min().item()) if start.numel() else num, num):
        rows = (joins <= k).nonzero().squeeze(1)  # (A,) active samples
        i = grid[k].expand(rows.numel())
        i_prev = (grid[k + 1] if k + 1 < num else torch.tensor(-1, device=z.device)).expand(rows.numel())
        noise = randn_rows(generators, rows, z.shape[1:], z)
        if guidance is None:
            eps = model.eps(z[rows], i)
            z_prev = step(z[rows], eps, i, i_prev, noise)
        else:
            z_prev, eps = guided_step(model, step, guidance, z[rows], i, i_prev, noise, rows, counts)
        counts["score_forwards"][rows] += 1
        if correction is not None:
            z_prev = correction(z_prev, tweedie_z0(model.schedule, z[rows], eps, i), i, i_prev, rows, counts)
        z[rows] = z_prev
    counts = {name: c.to(start.device) for name, c in counts.items()}
    return SolverOutput(latents=z, nfe=start.to(torch.int64).clone(), **counts)

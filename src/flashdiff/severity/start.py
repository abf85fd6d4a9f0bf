"""Start-time policies (``conf/adapter``): where and from what latent each sample's reverse process starts.

An adapter is ``adapter(model, y, num_steps, generators) -> Start``. Convention (the authors' code, METHOD.md §3):
a start latent at the noise level of grid position k runs the ``num_steps - 1 - k`` grid steps below it, so a
DDPM start matched to step i costs i NFE, and a match at the cleanest step costs none (the result is ẑ itself).
Pure noise sits above the grid: the baseline runs all ``num_steps``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import randn_rows
from flashdiff.diffusion.steps import ddim_inversion_step, sampling_grid, snr_match
from flashdiff.types import Start


def none(model: LatentDiffusion, y: Tensor, num_steps: int, generators: Sequence[torch.Generator]) -> Start:
    """The baseline: every sample starts at the top of the grid from pure noise ``z_N ~ N(0, I)``."""
    b = y.shape[0]
    z = randn_rows(generators, torch.arange(b), model.latent_shape, y)
    return Start(z, torch.full((b,), num_steps, dtype=torch.int64), [model.schedule.num_steps - 1] * b)


@torch.no_grad()
def ae(model: LatentDiffusion, y: Tensor, num_steps: int, generators: Sequence[torch.Generator],
       encoder: nn.Module | None = None) -> Start:
    """No diffusion: decode the severity encoder's ẑ (or ``E0(y)`` without an encoder); NFE 0."""
    z_hat, sigma2 = _encode(model, encoder, y)
    return Start(z_hat, torch.zeros(y.shape[0], dtype=torch.int64), [None] * y.shape[0], sigma2)


def _encode(model: LatentDiffusion, encoder: nn.Module | None, y: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(ẑ, σ̂²)`` from the severity encoder, or ``(E0(y), None)`` without one."""
    return encoder(y) if encoder is not None else (model.encode(y), None)


def noise_correction(z_hat: Tensor, sigma2: Tensor, c: float, generators: Sequence[torch.Generator]) -> Tensor:
    """``z_start = sqrt(1 - cσ²) ẑ + sqrt(cσ²) ε`` (METHOD.md §3), cσ² clamped to [0, 1]; (B, C, h, w)."""
    v = (c * sigma2).clamp(0.0, 1.0).view(-1, 1, 1, 1).to(z_hat)
    eps = randn_rows(generators, torch.arange(z_hat.shape[0]), z_hat.shape[1:], z_hat)
    return (1.0 - v).sqrt() * z_hat + v.sqrt() * eps


def _t_start(grid: Tensor, k: Tensor, steps: Tensor) -> list[int | None]:
    """Training step of each sample's start (``grid[k]``), None where no reverse step runs; k, steps (B,)."""
    return [int(grid[kb]) if s > 0 else None for kb, s in zip(k.tolist(), steps.tolist())]


def _start_at(model: LatentDiffusion, z_hat: Tensor, k: Tensor, grid: Tensor, c: float, sigma2: Tensor | None,
              generators: Sequence[torch.Generator]) -> Start:
    """A start at grid positions ``k`` (B,): noise correction with ``level`` (σ̂², else 1 - abar_k); ẑ if none runs."""
    steps = grid.numel() - 1 - k  # (B,) reverse steps below the matched level
    # Flash injects its predicted variance σ̂²; a fixed start the forward-diffusion variance 1 - abar of its step
    level = sigma2 if sigma2 is not None else (1.0 - model.schedule.abar(grid[k])).float().to(z_hat.device)
    z = noise_correction(z_hat, level, c, generators)
    z = torch.where((steps == 0).view(-1, 1, 1, 1).to(z.device), z_hat, z)  # start 0: the result is ẑ
    return Start(z, steps.to(torch.int64).cpu(), _t_start(grid, k, steps), sigma2)


@torch.no_grad()
def flash(model: LatentDiffusion, y: Tensor, num_steps: int, generators: Sequence[torch.Generator], *,
          encoder: nn.Module, c: float = 1.0) -> Start:
    """Flash (paper §3.2, eq. 3): ``(ẑ, σ̂²) = Ê(y)``; start where SNR_i matches 1/σ̂² on the solver's grid."""
    z_hat, sigma2 = encoder(y)  # (B, C, h, w), (B,)
    grid = sampling_grid(model.schedule.num_steps, num_steps)
    return _start_at(model, z_hat, snr_match(model.schedule, grid, sigma2).cpu(), grid, c, sigma2, generators)


@torch.no_grad()
def fixed(model: LatentDiffusion, y: Tensor, num_steps: int, generators: Sequence[torch.Generator], *,
          encoder: nn.Module | None, start: int = 100, c: float = 1.0) -> Start:
    """Non-adaptive control (paper Fig. 7, App. B): every sample starts at training step ``start`` from ẑ.

    ẑ comes from the severity encoder, or is ``E0(y)`` with ``encoder=None`` (a CCDF/SDEdit-style warm start).
    """
    z_hat, sigma2 = _encode(model, encoder, y)
    grid = sampling_grid(model.schedule.num_steps, num_steps)
    if not 0 <= start < model.schedule.num_steps:
        raise ValueError(f"adapter.start={start} must lie in [0, {model.schedule.num_steps - 1}]")
    k = (grid - start).abs().argmin().expand(y.shape[0])  # the grid step nearest to ``start``
    out = _start_at(model, z_hat, k, grid, c, None, generators)
    out.sigma2_hat = sigma2
    return out


@torch.no_grad()
def flash_ddim_encoding(model: LatentDiffusion, y: Tensor, num_steps: int, generators: Sequence[torch.Generator], *,
                        encoder: nn.Module) -> Start:
    """Flash with adaptive DDIM encoding (paper App. E): the start step as ``flash``, but ``z_start`` is ẑ carried
    there by deterministic DDIM inversion over the solver's grid instead of noise correction.

    Sample b inverts from clean up through ``grid[N-1], ..., grid[k_b]`` (``N - k_b`` UNet forwards, ε evaluated
    at the target step as in the authors' code, which also makes the first step from clean well defined); a
    match at the cleanest step returns ẑ with no forward. Only samples still ascending are run through the UNet.
    The forwards are returned in ``Start.score_forwards``. Pair it with a DDIM solver (δ = 0 inverts exactly).
    """
    z_hat, sigma2 = encoder(y)  # (B, C, h, w), (B,)
    grid = sampling_grid(model.schedule.num_steps, num_steps).to(z_hat.device)  # descending
    n = grid.numel()
    k = snr_match(model.schedule, grid, sigma2).to(z_hat.device)  # (B,)
    steps = n - 1 - k
    z = z_hat.clone()
    forwards = torch.zeros(z.shape[0], dtype=torch.int64, device=z.device)
    current = torch.full((z.shape[0],), -1, dtype=torch.int64, device=z.device)  # -1: clean
    for p in range(n - 1, int(k.min().item()) - 1, -1):  # ascending noise
        rows = torch.nonzero((steps > 0) & (k <= p)).flatten()
        if rows.numel() == 0:
            continue
        target = grid[p].expand(rows.numel())
        eps = model.eps(z[rows], target)
        z[rows] = ddim_inversion_step(model.schedule, z[rows], eps, current[rows], target)
        current[rows], forwards[rows] = target, forwards[rows] + 1
    return Start(z, steps.to(torch.int64).cpu(), _t_start(grid, k, steps), sigma2, score_forwards=forwards.cpu())

"""Start-time policies (``conf/adapter``): where on the solver's grid, and from what latent, each sample starts.

An adapter is a module called as ``adapter(model, y, grid, generators) -> Start`` (``flashdiff.types.Adapter``) on a
chunk of measurements, with ``grid`` the solver's descending grid (N,). The convention lives in ``start_on_grid``
(METHOD.md §3): a start latent prepared at the noise level of ``grid[k]`` is first evaluated there,
``ε_θ(z_start, grid[k])``, and runs the ``N - k`` grid steps from ``grid[k]`` to the clean end; ``t_start`` records
``grid[k]``. NFE 0 only where nothing is diffused (the AE control, or ``c σ̂² = 0``). Pure noise starts at
``grid[0]`` and runs all N steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flashdiff.diffusion.sampling import randn_rows
from flashdiff.diffusion.steps import ddim_inversion_step, snr_match
from flashdiff.types import LatentModel, Start


def start_on_grid(grid: Tensor, k: Tensor, diffused: Tensor) -> tuple[Tensor, list[int | None]]:
    """The convention of METHOD.md §3 in one place: reverse steps ``N - k`` and ``t_start = grid[k]`` for grid
    positions ``k`` (B,); 0 steps and no ``t_start`` where ``diffused`` (B,) bool is False."""
    n = grid.numel()
    k = k.to(torch.int64).cpu()
    diffused = diffused.cpu()
    nfe = torch.where(diffused, n - k, torch.zeros_like(k))
    return nfe, [int(grid[kb]) if d else None for kb, d in zip(k.tolist(), diffused.tolist())]


def noise_correction(z_hat: Tensor, sigma2: Tensor, c: float, generators: Sequence[torch.Generator]) -> Tensor:
    """``z_start = sqrt(1 - cσ²) ẑ + sqrt(cσ²) ε`` (METHOD.md §3), cσ² clamped to [0, 1]; (B, C, h, w) float32.

    Full precision whatever the encoder returned (bf16 under autocast): the start latent is not a network output.
    """
    z_hat = z_hat.float()
    v = (c * sigma2.float()).clamp(0.0, 1.0).view(-1, 1, 1, 1).to(z_hat.device)
    eps = randn_rows(generators, z_hat.shape[1:], z_hat)
    return (1.0 - v).sqrt() * z_hat + v.sqrt() * eps


def _encode(model: LatentModel, encoder: nn.Module | None, y: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(ẑ, σ̂²)`` from the severity encoder, or ``(E0(y), None)`` without one."""
    return encoder(y) if encoder is not None else (model.encode(y), None)


def _start_at(model: LatentModel, z_hat: Tensor, k: Tensor, grid: Tensor, c: float, level: Tensor,
              generators: Sequence[torch.Generator]) -> Start:
    """A start at grid positions ``k`` (B,) from ẑ noise-corrected with ``c · level`` (B,); ẑ where nothing runs."""
    level = level.float().to(z_hat.device)
    nfe, t_start = start_on_grid(grid, k, (c * level).cpu() > 0)
    z = noise_correction(z_hat, level, c, generators)
    z = torch.where((nfe == 0).view(-1, 1, 1, 1).to(z.device), z_hat.float(), z)  # nothing diffused: ẑ is the result
    return Start(z, nfe, t_start)


class Baseline(nn.Module):
    """``adapter=none``: every sample starts at the top of the grid from pure noise ``z ~ N(0, I)``."""

    def forward(self, model: LatentModel, y: Tensor, grid: Tensor, generators: Sequence[torch.Generator]) -> Start:
        b = y.shape[0]
        z = randn_rows(generators, model.latent_shape, y)
        return Start(z, torch.full((b,), grid.numel(), dtype=torch.int64), [int(grid[0])] * b)


class AE(nn.Module):
    """``adapter=ae``, no diffusion (the paper's AE row): decode the encoder's ẑ (or ``E0(y)`` without one); NFE 0."""

    def __init__(self, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder

    @torch.no_grad()
    def forward(self, model: LatentModel, y: Tensor, grid: Tensor, generators: Sequence[torch.Generator]) -> Start:
        z_hat, sigma2 = _encode(model, self.encoder, y)
        return Start(z_hat, torch.zeros(y.shape[0], dtype=torch.int64), [None] * y.shape[0], sigma2)


class Flash(nn.Module):
    """``adapter=flash`` (paper §3.2, eq. 3): ``(ẑ, σ̂²) = Ê(y)``; start where SNR_i matches 1/σ̂² on the grid, from ẑ
    noise-corrected with ``c σ̂²``."""

    def __init__(self, encoder: nn.Module, c: float = 1.0) -> None:
        super().__init__()
        self.encoder, self.c = encoder, float(c)

    @torch.no_grad()
    def forward(self, model: LatentModel, y: Tensor, grid: Tensor, generators: Sequence[torch.Generator]) -> Start:
        z_hat, sigma2 = self.encoder(y)  # (B, C, h, w), (B,)
        out = _start_at(model, z_hat, snr_match(model.schedule, grid, sigma2), grid, self.c, sigma2, generators)
        out.sigma2_hat = sigma2
        return out


class Fixed(nn.Module):
    """``adapter=fixed`` / ``fixed_e0`` (paper Fig. 7, App. B): every sample starts at the grid step nearest to
    training step ``t_start`` (i') from ẑ (the severity encoder's, or ``E0(y)`` with ``encoder=None``: a
    CCDF/SDEdit-style warm start) with the forward-diffusion variance ``c (1 - ᾱ)`` of that step."""

    def __init__(self, encoder: nn.Module | None = None, t_start: int = 100, c: float = 1.0) -> None:
        super().__init__()
        self.encoder, self.t_start, self.c = encoder, int(t_start), float(c)

    @torch.no_grad()
    def forward(self, model: LatentModel, y: Tensor, grid: Tensor, generators: Sequence[torch.Generator]) -> Start:
        from flashdiff.errors import ConfigError

        if not 0 <= self.t_start < model.schedule.num_steps:
            raise ConfigError(f"adapter.t_start={self.t_start} must lie in [0, {model.schedule.num_steps - 1}]")
        z_hat, sigma2 = _encode(model, self.encoder, y)
        k = (grid - self.t_start).abs().argmin().expand(y.shape[0])  # the grid step nearest to ``t_start``
        level = 1.0 - model.schedule.abar(grid[k])  # (B,) float64
        out = _start_at(model, z_hat, k, grid, self.c, level, generators)
        out.sigma2_hat = sigma2
        return out


class FlashDDIMEncoding(nn.Module):
    """``adapter=flash_ddim_encoding`` (paper App. E): the start step as ``Flash``, but ``z_start`` is ẑ carried
    there by deterministic DDIM inversion over the solver's grid instead of noise correction.

    Sample b inverts from clean up through ``grid[N-1], ..., grid[k_b]`` (``N - k_b`` UNet forwards, ε evaluated at
    the target step as in the authors' code), so DDIM with δ = 0 from ``grid[k_b]`` undoes it exactly for a constant
    ε. Only samples still ascending run through the UNet; the forwards are returned in ``Start.score_forwards``.
    The latents and the inversion arithmetic stay float32 under autocast (only the UNet runs in bf16); it runs at
    admission, where reading the start positions back is allowed.
    Pair it with a DDIM solver (``solver=latent_dps_ddim solver.delta=0``).
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    @torch.no_grad()
    def forward(self, model: LatentModel, y: Tensor, grid: Tensor, generators: Sequence[torch.Generator]) -> Start:
        z_hat, sigma2 = self.encoder(y)  # (B, C, h, w), (B,)
        grid = grid.to(z_hat.device)
        k = snr_match(model.schedule, grid, sigma2).to(z_hat.device)  # (B,)
        nfe, t_start = start_on_grid(grid, k, sigma2.cpu() > 0)
        runs = nfe.to(z_hat.device) > 0
        z = z_hat.float().clone()  # float32 even where the encoder ran in bf16
        forwards = torch.zeros(z.shape[0], dtype=torch.int64, device=z.device)
        current = torch.full((z.shape[0],), -1, dtype=torch.int64, device=z.device)  # -1: clean
        for p in range(grid.numel() - 1, int(k.min().item()) - 1, -1):  # ascending noise
            rows = torch.nonzero(runs & (k <= p)).flatten()
            if rows.numel() == 0:
                continue
            target = grid[p].expand(rows.numel())
            eps = model.eps(z[rows], target).float()
            z[rows] = ddim_inversion_step(model.schedule, z[rows], eps, current[rows], target)
            current[rows], forwards[rows] = target, forwards[rows] + 1
        return Start(z, nfe, t_start, sigma2, score_forwards=forwards.cpu())

"""Shared operator plumbing: seeded per-sample severity (B,) in [0, 1] and the noise of ``y = A(x) + n``."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flashdiff.data.seeding import generators
from flashdiff.types import Params

log = logging.getLogger(__name__)

NOISE_SEED_XOR = 0x5DEECE66D
"""XOR-ed into an image's seed to seed its measurement noise (not its parameter stream)."""


def image_noise_seed(seed: int) -> int:
    """Seed of the measurement-noise generator of the image whose parameter seed is ``seed``."""
    return int(seed) ^ NOISE_SEED_XOR


def check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    """Validate a severity range ``[lo, hi]``, ``0 <= lo <= hi <= 1``; ``name``: config key."""
    values = [float(v) for v in value]
    if len(values) != 2:
        raise ValueError(f"{name} must be [lo, hi], got {list(value)!r}")
    lo, hi = values
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"{name} must satisfy 0 <= lo <= hi <= 1, got [{lo}, {hi}]")
    return lo, hi


def per_sample_generators(seeds: Tensor | None, batch: int,
                      generator: torch.Generator | None) -> list[torch.Generator | None]:
    """One generator per sample: ``Generator(seed_b)`` for ``seeds`` (B,), else ``generator``."""
    if seeds is None:
        return [generator] * batch
    if seeds.shape != (batch,):
        raise ValueError(f"seeds must have shape ({batch},), got {tuple(seeds.shape)}")
    return generators(seeds.tolist())


def uniform(shape: Sequence[int], generator: torch.Generator | None) -> Tensor:
    """U[0, 1) float32 tensor of ``shape`` from ``generator`` (global CPU RNG if None)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(tuple(shape), generator=generator, device=device)


def draw_severity(generators: list[torch.Generator | None],
                  severity_range: tuple[float, float]) -> Tensor:
    """Severity ``severity_b ~ U[lo, hi]`` (lo == hi gives exactly lo), one per generator: (B,) float32."""
    lo, hi = severity_range
    u = torch.tensor([float(uniform((), g)) for g in generators], dtype=torch.float64)
    return (lo + (hi - lo) * u).float()


def params_device(seeds: Tensor | None, generator: torch.Generator | None) -> torch.device:
    """Device of drawn parameters: that of ``seeds``, else of ``generator``, else CPU."""
    if seeds is not None:
        return seeds.device
    return generator.device if generator is not None else torch.device("cpu")


def measurement_noise(x: Tensor, seeds: Tensor | None) -> Tensor:
    """N(0, I) like ``x`` (B, C, H, W); sample b from ``Generator(image_noise_seed(seed_b))``."""
    if seeds is None:
        return torch.randn_like(x)
    if seeds.shape != x.shape[:1]:
        raise ValueError(f"seeds must have shape ({x.shape[0]},), got {tuple(seeds.shape)}")
    gens = generators([image_noise_seed(s) for s in seeds.tolist()])
    return torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens]).to(x)


class NoisyOperator(nn.Module):
    """Holds ``noise_std``, test/train severity ranges; ``measure`` = ``A(x) + noise_std * n`` (subclasses give A)."""

    def __init__(self, severity_range: Sequence[float], train_severity_range: Sequence[float],
                 noise_std: float) -> None:
        super().__init__()
        if not float(noise_std) >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.noise_std = float(noise_std)
        self.severity_range = check_range("severity_range", severity_range)
        self.train_severity_range = check_range("train_severity_range", train_severity_range)

    def _draw_severity(self, seeds: Tensor | None, batch: int, train: bool,
                       generator: torch.Generator | None,
                       ) -> tuple[Tensor, list[torch.Generator | None]]:
        """Per-sample generators and severity (B,) from the train or test range."""
        gens = per_sample_generators(seeds, batch, generator)
        rng = self.train_severity_range if train else self.severity_range
        return draw_severity(gens, rng), gens

    def measure(self, x: Tensor, params: Params, seeds: Tensor | None = None) -> Tensor:
        """``y = A(x) + noise_std * n`` (B, C, H, W), unclipped; ``n`` seeded per sample."""
        y = self.A(x, params)
        if self.noise_std == 0.0:
            return y
        return y + self.noise_std * measurement_noise(y, seeds)

    def severity(self, params: Params) -> Tensor:
        """Ground-truth severity (B,) in [0, 1]."""
        return params["severity"]

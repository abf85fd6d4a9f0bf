"""``adapter=flash_budget``: Flash under a compute budget. Harder images still start earlier, and the run's mean NFE
meets ``adapter.nfe_mean``.

Rule: every image's predicted severity is multiplied by one common factor α, ``σ̂²' = α σ̂²``, and Flash runs on
``σ̂²'``. It is SNR-matched on the solver's grid (eq. 3) and noise-corrected with ``c σ̂²'`` (clamped to [0, 1]).
The ordering of the starts is Flash's, and images with equal σ̂² get equal starts. α is found from the σ̂² of every
image of the run before any image starts (``plan``): the encoder is cheap, so the run is encoded first (only σ̂² is
kept) and then allocated. The plan is part of the run: ``python -m flashdiff`` stores it in ``plan.json`` and a
resumed run reuses its α (``restore``) without encoding again, whatever its image set.

Mean NFE is a non-decreasing step function of α. Bisection on log α finds the step value closest to the target
(between two equally close ones, the cheaper), then the edges of the flat interval where the mean takes that value;
α is the interval's geometric middle, so a float-level change of σ̂² (another batch shape, another process count)
cannot move a start. The search covers every σ̂² > 0: from every image at the grid's cleanest level to every image
at its noisiest (derived from the grid's SNRs and the σ̂² seen). Clipping: an image whose σ̂²' lies beyond the
grid's noisiest level starts there from pure noise (N steps); one below the cleanest level runs that single step.
Only an image with σ̂² = 0 (or c = 0) diffuses nothing. A target outside [1, N] is met as nearly as the clipping
allows, and the log says so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from flashdiff.diffusion.steps import snr_match
from flashdiff.severity.start import _start_at
from flashdiff.types import LatentModel, Start

log = logging.getLogger(__name__)


def mean_nfe(schedule, grid: Tensor, sigma2: Tensor, alpha: float) -> float:
    """Mean reverse steps of Flash with severities ``α σ̂²`` (B,) on ``grid`` (N,); σ̂² = 0 runs none."""
    k = snr_match(schedule, grid, alpha * sigma2.double())
    return float(torch.where(sigma2 > 0, grid.numel() - k.cpu(), torch.zeros_like(k.cpu())).float().mean())


def _first(pred, lo: float, hi: float, iterations: int = 64) -> float:  # noqa: ANN001
    """The smallest x in [lo, hi] where the monotone ``pred`` holds (to bisection precision); ``hi`` if nowhere."""
    if pred(lo):
        return lo
    if not pred(hi):
        return hi
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if pred(mid) else (mid, hi)
    return hi


def solve_alpha(schedule, grid: Tensor, sigma2: Tensor, target: float) -> float:
    """The common factor α whose mean NFE is closest to ``target`` (ties: the cheaper), in the geometric middle of
    the flat interval of α giving that mean; the search spans every σ̂² > 0 (from all images at the cleanest grid
    level to all at the noisiest)."""
    positive = sigma2[sigma2 > 0].double()
    if positive.numel() == 0:
        return 1.0  # nothing diffuses whatever α is
    snr = schedule.snr()[grid]  # (N,) float64
    lo = -math.log(float(snr.max() * positive.max())) - 1.0  # log α: every image at the cleanest grid level
    hi = -math.log(float(snr.min() * positive.min())) + 1.0  # every image at the noisiest
    mean = lambda log_alpha: mean_nfe(schedule, grid, sigma2, math.exp(log_alpha))  # noqa: E731
    above = _first(lambda x: mean(x) >= target, lo, hi)
    below = max(lo, above - (hi - lo) * 2.0**-60)  # the bracket's lower side: the step value under the target
    value = min((mean(below), mean(above)), key=lambda v: (abs(v - target), v))
    left = _first(lambda x: mean(x) >= value, lo, hi)  # the flat interval of ``value``: [left, right)
    right = _first(lambda x: mean(x) > value, lo, hi)
    return math.exp(0.5 * (left + right))


class FlashBudget(nn.Module):
    """Flash with the predicted severities rescaled by one factor so that the run's mean NFE is ``nfe_mean``."""

    def __init__(self, encoder: nn.Module, nfe_mean: float, c: float = 1.0) -> None:
        super().__init__()
        self.encoder, self.nfe_mean, self.c = encoder, float(nfe_mean), float(c)
        self.alpha: float | None = None
        self.planned: dict[str, float] = {}

    @torch.no_grad()
    def plan(self, model: LatentModel, measurements: Iterable[Tensor], grid: Tensor) -> None:
        """Encode every measurement of the run (chunks (B, 3, H, W); only σ̂² is kept) and fix α for the target."""
        sigma2 = torch.cat([self.encoder(y)[1].float().cpu() for y in measurements])
        self.alpha = solve_alpha(model.schedule, grid, sigma2, self.nfe_mean)
        reached = mean_nfe(model.schedule, grid, sigma2, self.alpha)
        self.planned = {"alpha": self.alpha, "nfe_mean_target": self.nfe_mean, "nfe_mean_planned": reached,
                        "images": int(sigma2.numel())}
        log.info("flash_budget: alpha %.4g over %d images gives a mean NFE of %.2f (target %.2f)", self.alpha,
                 sigma2.numel(), reached, self.nfe_mean)
        if abs(reached - self.nfe_mean) > 0.5:
            log.warning("flash_budget: the grid's clipping ends allow a mean NFE of %.2f, not %.2f", reached,
                        self.nfe_mean)

    def restore(self, planned: dict[str, float]) -> None:
        """Take a stored plan (``planned``, as ``plan.json`` holds it) instead of planning again."""
        if float(planned["nfe_mean_target"]) != self.nfe_mean:
            from flashdiff.errors import RecordError

            raise RecordError(f"the stored plan was made for adapter.nfe_mean={planned['nfe_mean_target']}, not "
                              f"{self.nfe_mean}: give this run a new folder or pass overwrite=true")
        self.alpha, self.planned = float(planned["alpha"]), dict(planned)

    @torch.no_grad()
    def forward(self, model: LatentModel, y: Tensor, grid: Tensor, generators: Sequence[torch.Generator]) -> Start:
        if self.alpha is None:
            raise RuntimeError("adapter=flash_budget needs the run's measurements first (plan): run it through "
                               "flashdiff.reconstruct or python -m flashdiff")
        z_hat, sigma2 = self.encoder(y)  # (B, C, h, w), (B,)
        scaled = self.alpha * sigma2.double()  # as planned (float64: α may be far from 1)
        out = _start_at(model, z_hat, snr_match(model.schedule, grid, scaled), grid, self.c, scaled, generators)
        out.sigma2_hat = sigma2
        return out

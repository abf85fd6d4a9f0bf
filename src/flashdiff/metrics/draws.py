"""Several samples per image (``samples_per_image: K``): the posterior mean and standard deviation per image, how well
the standard deviation predicts the error, and the best-of-K "oracle" (kept apart from the headline numbers).

Everything is rebuilt from the run folder: each draw's PNG in ``images/`` and the clean image in ``clean/``. It writes
``mean/<index>.png`` and ``std/<index>.png`` per image (std in [0, 1] image units, not rescaled) and
``uncertainty.png`` (the mean absolute error of the posterior mean against its per-pixel std, in std bins).

Memory stays bounded whatever the number of images: one image's draws are read at a time, and only running sums
are kept. The pixel correlation of std and |error| is exact (Pearson from the sums of s, e, s², e², s·e); the
figure's bins of equal pixel counts are estimated from a fine fixed histogram of std (``FINE_BINS`` bins over
[0, 0.5], the largest std of values in [0, 1]), so each plotted bin holds about, not exactly, the same count.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, read_image
from torchvision.utils import save_image

from flashdiff.metrics.image import psnr
from flashdiff.records import image_name

log = logging.getLogger(__name__)

ORACLE_NOTE = ("per image the best of its K draws, chosen with the ground truth: an upper bound on what picking "
               "among the samples could give, not a reconstruction method's score")


def _png(path: Path) -> Tensor:
    """A PNG as (3, H, W) float in [0, 1]."""
    return read_image(str(path), ImageReadMode.RGB).float() / 255.0


def _oracle(rows: list[dict[str, str]], k: int) -> dict[str, Any]:
    """Mean over images of each image's best draw by PSNR and by SSIM (each chosen on its own)."""
    by_image: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_image[r["index"]].append(r)
    best = lambda key: sum(max(float(r[key]) for r in rs) for rs in by_image.values()) / len(by_image)  # noqa: E731
    return {"k": k, "psnr": best("psnr"), "ssim": best("ssim"), "n_images": len(by_image), "note": ORACLE_NOTE}


FINE_BINS = 2000
"""Fixed histogram bins of the per-pixel std over [0, 0.5] from which the figure's equal-count bins are formed."""


def _correlation(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two flat tensors."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-30))


class PixelStats:
    """Running sums over pixels of (std s, |error| e): the exact Pearson correlation and a fine histogram of s with
    the count and the summed e per bin, in memory that does not grow with the number of images."""

    def __init__(self) -> None:
        self.sums = torch.zeros(6, dtype=torch.float64)  # n, Σs, Σe, Σs², Σe², Σse
        self.count = torch.zeros(FINE_BINS, dtype=torch.float64)
        self.error = torch.zeros(FINE_BINS, dtype=torch.float64)

    def add(self, s: Tensor, e: Tensor) -> None:
        s, e = s.flatten().double(), e.flatten().double()
        self.sums += torch.stack([torch.tensor(float(s.numel()), dtype=torch.float64), s.sum(), e.sum(),
                                  s.pow(2).sum(), e.pow(2).sum(), (s * e).sum()])
        bins = (s / 0.5 * FINE_BINS).long().clamp(0, FINE_BINS - 1)
        self.count.index_add_(0, bins, torch.ones_like(s))
        self.error.index_add_(0, bins, e)

    def correlation(self) -> float:
        n, s, e, ss, ee, se = self.sums.tolist()
        cov, var_s, var_e = se - s * e / n, ss - s * s / n, ee - e * e / n
        return cov / max((var_s * var_e) ** 0.5, 1e-30)

    def binned(self, bins: int = 20) -> tuple[list[float], list[float]]:
        """(mean std, mean |error|) in ``bins`` groups of about equal pixel counts (fine bins merged in order)."""
        centres = (torch.arange(FINE_BINS, dtype=torch.float64) + 0.5) * 0.5 / FINE_BINS
        group = (self.count.cumsum(0) - self.count / 2) * bins // self.count.sum().clamp_min(1)  # (FINE_BINS,)
        x, y = [], []
        for g in range(bins):
            member = (group == g) & (self.count > 0)
            n = self.count[member].sum()
            if n > 0:
                x.append(float((self.count[member] * centres[member]).sum() / n))
                y.append(float(self.error[member].sum() / n))
        return x, y


def draw_summary(out: Path, rows: list[dict[str, str]]) -> dict[str, Any]:
    """``oracle_best_of_k`` and ``uncertainty`` of a run with several draws per image (finite ``rows`` only; {} when
    none is finite)."""
    if not rows:
        return {}
    draws: dict[int, list[int]] = defaultdict(list)
    for r in rows:
        draws[int(r["index"])].append(int(r["draw"]))
    k = max(len(d) for d in draws.values())
    pixels, per_image = PixelStats(), []
    for folder in ("mean", "std"):
        (out / folder).mkdir(exist_ok=True)
    for index, ds in sorted(draws.items()):
        if len(ds) < 2:
            continue
        samples = torch.stack([_png(out / "images" / image_name(index, d)) for d in sorted(ds)])  # (K, 3, H, W)
        mean, std = samples.mean(0), samples.std(0)
        clean = _png(out / "clean" / f"{index:05d}.png")
        save_image(mean, out / "mean" / f"{index:05d}.png")
        save_image(std.clamp(0, 1), out / "std" / f"{index:05d}.png")
        error = (mean - clean).abs()
        pixels.add(std, error)
        per_image.append((float(std.mean()), float(error.pow(2).mean().sqrt()), float(psnr(mean[None], clean[None]))))
    if not per_image:
        return {"oracle_best_of_k": _oracle(rows, k)}
    image_std, image_rmse, mean_psnr = (torch.tensor(v) for v in zip(*per_image))
    uncertainty = {"pixel_correlation_std_abs_error": pixels.correlation(),
                   "image_correlation_std_rmse": _correlation(image_std, image_rmse) if len(per_image) > 1 else None,
                   "psnr_of_posterior_mean": float(mean_psnr.mean()), "n_images": len(per_image), "k": k}
    _figure(out / "uncertainty.png", *pixels.binned(), uncertainty)
    return {"oracle_best_of_k": _oracle(rows, k), "uncertainty": uncertainty}


def _figure(path: Path, x: list[float], y: list[float], stats: dict[str, Any]) -> None:
    """Mean absolute error of the posterior mean in bins of about equal pixel counts of its std, with the identity
    line; ``x``, ``y`` from ``PixelStats.binned``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=120)
    ax.plot(x, y, "o-", label="mean |error| per std bin")
    top = max(max(x), max(y))
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="|error| = std")
    ax.set_xlabel("per-pixel std over the K draws")
    ax.set_ylabel("|posterior mean - clean|")
    ax.set_title(f"K = {stats['k']}, {stats['n_images']} images, pixel r = "
                 f"{stats['pixel_correlation_std_abs_error']:.2f}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

"""Severity-encoder study (paper App. C, Fig. 10): σ̂² per image at a grid of severities, noise levels and noise seeds.

Rows go to ``severity_study.csv`` (one per image × noise level × noise seed × severity), so that the ordering
accuracy against the test noise level is rebuilt from files by ``flashdiff.report``. The ordering accuracy is
``flashdiff.metrics.ordering.ordering_accuracy`` (App. C, Def. 1), the same function the training validates with.
"""

from __future__ import annotations

import copy
import csv
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from flashdiff.data.seeding import measurement_seed
from flashdiff.metrics.ordering import ordering_accuracy
from flashdiff.records import write_atomic
from flashdiff.types import Operator

log = logging.getLogger(__name__)

STUDY_COLUMNS = ("index", "image_id", "noise_std", "noise_seed", "severity", "sigma2_hat")


def severity_grid(op: Operator, n_levels: int, severity_range: Sequence[float] | None = None) -> list[float]:
    """``n_levels`` evenly spaced severities over ``severity_range``, else the operator's test range when it is an
    interval, else its training range."""
    if severity_range is None:
        test, train = getattr(op, "severity_range", (0.0, 1.0)), getattr(op, "train_severity_range", (0.0, 1.0))
        severity_range = test if test[0] < test[1] else train
    lo, hi = float(severity_range[0]), float(severity_range[1])
    if not (n_levels >= 2 and lo < hi):
        raise ValueError(f"a severity study needs >= 2 levels over an interval, got {n_levels} over [{lo}, {hi}]")
    return torch.linspace(lo, hi, n_levels).tolist()


def _at(op: Operator, severity: float, noise_std: float) -> Operator:
    """A copy of ``op`` drawing exactly ``severity`` at test time, with noise ``noise_std``."""
    out = copy.deepcopy(op)
    out.severity_range = (float(severity), float(severity))
    out.noise_std = float(noise_std)
    return out


@torch.no_grad()
def severity_study(encoder: nn.Module, op: Operator, dataset: Dataset, *, noise_levels: Sequence[float],
                   n_levels: int = 10, noise_seeds: int = 3, num_images: int = 100, batch_size: int = 50,
                   severity_range: Sequence[float] | None = None,
                   device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """σ̂² rows for the first ``num_images`` images; each noise seed draws one noise (and operator) sample per image,
    shared by all severities, as the training validation does."""
    grid = severity_grid(op, n_levels, severity_range)
    encoder = encoder.to(device).eval()
    n = min(int(num_images), len(dataset))
    rows: list[dict[str, Any]] = []
    for start in range(0, n, batch_size):
        items = [dataset[k] for k in range(start, min(start + batch_size, n))]
        x = torch.stack([it["x"] for it in items]).to(device)  # (B, 3, H, W)
        for sigma in noise_levels:
            for k in range(noise_seeds):
                seeds = torch.tensor([measurement_seed(int(it["seed"]), k) for it in items], dtype=torch.int64)
                for t in grid:
                    op_t = _at(op, t, sigma)
                    y = op_t.measure(x, op_t.draw(seeds, tuple(x.shape)), seeds)
                    sigma2_hat = encoder(y)[1].cpu().tolist()  # (B,)
                    rows += [{"index": int(it["index"]), "image_id": it["id"], "noise_std": float(sigma),
                              "noise_seed": k, "severity": float(t), "sigma2_hat": s2}
                             for it, s2 in zip(items, sigma2_hat)]
        log.info("severity study: %d of %d images", min(start + batch_size, n), n)
    return rows


def write_study(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """``severity_study.csv`` (atomically)."""
    lines = [",".join(STUDY_COLUMNS)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                                                  for c in STUDY_COLUMNS) for r in rows]
    write_atomic(path, "\n".join(lines) + "\n")


def read_study(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``severity_study.csv``."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def ordering_by_noise(rows: list[dict[str, str]]) -> dict[float, list[float]]:
    """Ordering accuracy (App. C, Def. 1) per (image, noise seed), grouped by noise level: {σ_y: [OA, ...]}."""
    series: dict[tuple[float, str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        series[(float(r["noise_std"]), r["index"], r["noise_seed"])].append((float(r["severity"]),
                                                                            float(r["sigma2_hat"])))
    out: dict[float, list[float]] = defaultdict(list)
    for (sigma, _, _), pairs in sorted(series.items()):
        pairs.sort()
        s = torch.tensor([[p[0] for p in pairs]], dtype=torch.float64)
        h = torch.tensor([[p[1] for p in pairs]], dtype=torch.float64)
        out[sigma].append(float(ordering_accuracy(s, h)[0]))
    return dict(sorted(out.items()))

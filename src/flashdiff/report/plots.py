"""Shared plotting plumbing of the report: the Agg backend, one ``NoDataError`` reason type, grouping of runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from flashdiff.report.runs import Run  # noqa: E402

TRAINING_NOISE = 0.05  # σ_y every severity encoder was trained with


class NoDataError(Exception):
    """A figure whose inputs are not among the given runs; the message says which inputs it needs."""


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as PNG and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def grid(n: int, width: float = 4.8, height: float = 3.6) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels in rows of at most 3; returns the figure and the used axes."""
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def largest_per_key(runs: list[Run], key: Callable[[Run], Hashable]) -> dict[Hashable, Run]:
    """One run per key: the one with the most images (repeat runs of one setting give the same σ̂ and starts)."""
    groups: dict[Hashable, list[Run]] = defaultdict(list)
    for run in runs:
        groups[key(run)].append(run)
    return {k: max(v, key=lambda r: len(r.rows)) for k, v in groups.items()}


def preferred_per_key(runs: list[Run], key: Callable[[Run], Hashable]) -> dict[Hashable, Run]:
    """One run per key: at the training noise level σ_y = 0.05 when there is one, then the one with most images."""
    groups: dict[Hashable, list[Run]] = defaultdict(list)
    for run in runs:
        groups[key(run)].append(run)
    return {k: max(v, key=lambda r: (r.noise_std == TRAINING_NOISE, len(r.rows))) for k, v in groups.items()}


def has_values(run: Run, column: str) -> bool:
    """Whether ``samples.csv`` has a non-empty ``column`` in every row."""
    values = run.column(column) if run.rows and column in run.rows[0] else []
    return bool(values) and all(v is not None for v in values)


def safe_name(text: str) -> str:
    """A file-name fragment of ``text``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")


def noise_text(value: float | None) -> str:
    """σ_y for a title ('?' when a run does not record it)."""
    return "?" if value is None else f"{value:g}"

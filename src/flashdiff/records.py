"""Run records written atomically: ``samples.csv`` (one row per image) and ``summary.json``; runs resume from them."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from flashdiff.types import COUNTERS

SAMPLE_COLUMNS = ("index", "image_id", "severity", "sigma2_hat", "t_start", "nfe", "psnr", "ssim", "lpips", "seconds",
                  *COUNTERS,  # the solver's per-sample costs after the metrics
                  "toy_feature_mse")  # toy perceptual proxy (flashdiff.metrics.run), added after the costs


def provenance(root: str | Path) -> dict[str, Any]:
    """``date``, ``commit`` (short HEAD of the checkout at ``root``; None outside git) and ``machine`` of a record."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root)
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit.stdout.strip() or None,
            "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"}


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def run_lock(out: str | Path, rank: int = 0) -> Iterator[None]:
    """Hold ``<out>/.lock.rank<rank>`` while a run writes into ``out``: a second run given the same folder (and rank)
    is refused at once instead of appending a second copy of every row. The lock goes with the process, crash or not.
    """
    import fcntl  # POSIX; imported here so that the records stay readable where it is missing

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f".lock.rank{rank}", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another flashdiff run is writing into {out} (process rank {rank}); let it finish "
                               "(this command then resumes from its samples.csv) or give this run another folder "
                               "(hydra.run.dir=...)") from None
        yield


def read_samples(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``samples.csv`` (empty when the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != SAMPLE_COLUMNS:
            raise ValueError(f"{path} has columns {reader.fieldnames}, expected {list(SAMPLE_COLUMNS)}; "
                             "write this run into a new directory (hydra.run.dir=...)")
        return list(reader)


def _cell(value: Any) -> str:
    """CSV text of a value: empty for None/NaN, 6 significant digits for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def append_samples(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Add rows to ``samples.csv`` (rewritten atomically, sorted by index); unknown keys are an error."""
    existing = read_samples(path)
    new = [{k: _cell(row.get(k)) for k in SAMPLE_COLUMNS} for row in rows]
    for row in new:
        if missing := set(SAMPLE_COLUMNS) - set(row):
            raise KeyError(f"sample row lacks {missing}")
    merged = sorted(existing + new, key=lambda r: int(r["index"]))
    lines = [",".join(SAMPLE_COLUMNS)] + [",".join(r[k] for k in SAMPLE_COLUMNS) for r in merged]
    write_atomic(path, "\n".join(lines) + "\n")


def write_summary(path: str | Path, summary: dict[str, Any]) -> None:
    """``summary.json``, atomically; NaN becomes null."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    write_atomic(path, json.dumps(clean, indent=2, sort_keys=False) + "\n")

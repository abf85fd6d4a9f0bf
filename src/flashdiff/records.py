"""Run records written atomically: ``samples.csv`` (one row per image) and ``summary.json``; runs resume from them."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flashdiff.counters import COUNTERS
from flashdiff.errors import RecordError

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = ("index", "image_id", "severity", "sigma2_hat", "t_start", "nfe", "psnr", "ssim", "lpips", "seconds",
                  *COUNTERS,  # the solver's per-sample costs after the metrics
                  "toy_feature_mse",  # toy perceptual proxy (flashdiff.metrics.run), added after the costs
                  "draw")  # which of an image's samples_per_image trajectories (0 with one), added last
LEGACY_COLUMNS = SAMPLE_COLUMNS[:-1]
"""The columns before ``draw`` was added (2026-12-02): such a file reads with draw 0 and is rewritten with it."""
RESULT_NEUTRAL = ("num_images", "batch_size", "device", "logger", "batching", "engine", "metrics", "objective",
                  "overwrite", "memory", "compile", "hydra")
"""Config keys that change no image's result: a run resumes across them (its records are keyed to the rest)."""
TEXT_COLUMNS = ("image_id",)
"""Columns that hold text; every other column is a number, empty (not applicable) or ``nan``/``inf`` (failed)."""
INT_COLUMNS = ("index", "draw")
"""Columns that always hold a non-negative integer: the row's key."""
OPTIONAL_INT_COLUMNS = ("t_start", "nfe", *COUNTERS)
"""Non-negative integer columns, or empty where they do not apply (``t_start`` where no diffusion ran)."""


def image_name(index: int, draw: int = 0) -> str:
    """``images/`` file of a draw: ``00012.png`` for draw 0, ``00012_d3.png`` for draw 3."""
    return f"{index:05d}.png" if draw == 0 else f"{index:05d}_d{draw}.png"


def provenance(root: str | Path) -> dict[str, Any]:
    """``date``, ``commit`` (short HEAD of the checkout at ``root``; None outside git) and ``machine`` of a record."""
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root)
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit.stdout.strip() or None,
            "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"}


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: several may write the same file at once
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def run_lock(out: str | Path, rank: int = 0) -> Iterator[None]:
    """Hold ``<out>/.lock.rank<rank>`` while a run writes into ``out``: a second run given the same folder (and rank)
    is refused at once instead of appending a second copy of every row. The lock goes with the process, crash or not,
    and a run that ends removes its lock file (a finished folder holds none)."""
    import fcntl  # POSIX; imported here so that the records stay readable where it is missing

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f".lock.rank{rank}"
    busy = RecordError(f"another flashdiff run is writing into {out} (process rank {rank}); let it finish (this "
                       "command then resumes from its samples.csv) or give this run another folder (hydra.run.dir=...)")
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:  # a lock on a file its holder has just removed is no lock: the path must still be this file
            if os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:
                raise busy
        except FileNotFoundError:
            raise busy from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still holding the lock: nobody can take this file in between


def _number(value: str) -> bool:
    """Whether a cell is empty or parses as a float (``nan`` and ``inf`` included)."""
    if value == "":
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True


def _damage(row: list[str]) -> str | None:
    """Why a samples.csv row cannot be used (wrong field count, a field not of its column's type), or None."""
    if len(row) != len(SAMPLE_COLUMNS):
        return f"{len(row)} fields, expected {len(SAMPLE_COLUMNS)}"
    record = dict(zip(SAMPLE_COLUMNS, row))
    bad = [k for k in INT_COLUMNS if not record[k].isdigit()]
    bad += [k for k in OPTIONAL_INT_COLUMNS if record[k] and not record[k].isdigit()]
    bad += [k for k in SAMPLE_COLUMNS if k not in (*TEXT_COLUMNS, *INT_COLUMNS, *OPTIONAL_INT_COLUMNS)
            and not _number(record[k])]
    return f"not of its column's type: {', '.join(bad)}" if bad else None


def read_samples(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``samples.csv`` (empty when the file does not exist yet). A damaged row (a line cut by a crash,
    wrong field count, an unparsable number) is dropped with a warning naming the line, so its image is redone."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        text = f.read()
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return []
    if not text.endswith("\n") and len(lines) > 1:  # the last row was cut by a crash (every row ends with a newline)
        log.warning("%s line %d dropped (cut short): its image is recomputed", path, len(lines))
        lines = lines[:-1]
    if tuple(lines[0]) == LEGACY_COLUMNS:
        lines = [list(SAMPLE_COLUMNS)] + [row + ["0"] if len(row) == len(LEGACY_COLUMNS) else row for row in lines[1:]]
    if tuple(lines[0]) != SAMPLE_COLUMNS:
        raise RecordError(f"{path} has columns {lines[0]}, expected {list(SAMPLE_COLUMNS)}; write this run into a "
                          "new folder (hydra.run.dir=...)")
    rows = []
    for number, row in enumerate(lines[1:], start=2):
        if why := _damage(row):
            log.warning("%s line %d dropped (%s): its image is recomputed", path, number, why)
            continue
        rows.append(dict(zip(SAMPLE_COLUMNS, row)))
    return rows


def _cell(value: Any) -> str:
    """CSV text of a value: empty for None, ``nan``/``inf`` for non-finite floats, 6 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def _record(row: dict[str, Any]) -> list[str]:
    """A row's cells in column order (a missing or empty ``draw`` is draw 0); other missing keys are an error."""
    if row.get("draw") in (None, ""):
        row = row | {"draw": 0}
    if missing := set(SAMPLE_COLUMNS) - set(row):
        raise KeyError(f"sample row lacks {sorted(missing)}")
    return [_cell(row[k]) for k in SAMPLE_COLUMNS]


def _drop_cut_line(path: Path) -> None:
    """Cut a last line that a crash left without its newline off the file, so no cut row ever gets a newline (a row
    cut inside its last field would otherwise parse as another value: ``12`` read as ``1``)."""
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        keep = f.read().rfind(b"\n") + 1  # up to and including the last complete line's newline
        log.warning("%s: a row cut short by a crash was dropped (its image is recomputed)", path)
        f.truncate(keep)


def append_samples(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to ``samples.csv`` (header first if new), flushed to disk; quoted by the csv module, so ids with
    commas, quotes or newlines round-trip. A crash mid-line leaves one cut row, dropped here before the next append
    (and by ``read_samples``)."""
    path = Path(path)
    records = [_record(row) for row in rows]
    if path.exists():
        _drop_cut_line(path)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        if new:
            writer.writerow(SAMPLE_COLUMNS)
        writer.writerows(records)
        f.flush()
        os.fsync(f.fileno())


def repair_samples(path: str | Path) -> int:
    """Rewrite ``samples.csv`` without its damaged rows (atomically), if it has any; returns how many were dropped.
    Run whenever a run folder is opened, whether or not images remain, so no damaged row outlives a re-run."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, newline="") as f:
        total = sum(1 for _ in csv.reader(f)) - 1
    rows = read_samples(path)
    if len(rows) < total:
        write_samples(path, rows)
        log.warning("%s: %d damaged rows dropped (their images are recomputed)", path, total - len(rows))
    return total - len(rows)


def write_samples(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Rewrite ``samples.csv`` atomically with ``rows`` sorted by index (damaged rows are gone from it)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SAMPLE_COLUMNS)
    writer.writerows(_record(r) for r in sorted(rows, key=lambda r: (int(r["index"]), int(r["draw"] or 0))))
    write_atomic(path, buf.getvalue())


def write_summary(path: str | Path, summary: dict[str, Any]) -> None:
    """``summary.json``, atomically; non-finite floats become null."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    write_atomic(path, json.dumps(clean, indent=2, sort_keys=False) + "\n")


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """A run's ``summary.json``; None when absent or unreadable (then with a warning naming it: it is recomputed)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.warning("%s is unreadable (%s): treated as absent, the run recomputes it", path, err)
        return None
    if not isinstance(summary, dict):
        log.warning("%s is not a JSON object: treated as absent, the run recomputes it", path)
        return None
    return summary


def fingerprint(config: dict[str, Any]) -> str:
    """A short hash of the result-relevant config (``config`` with ``VOLATILE`` keys already removed)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

"""Side-by-side tables of runs, read from their ``summary.json`` files; the paper's Table-1 layout (``table1``)."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from flashdiff.errors import InputError
from flashdiff.report.folders import RunFolder, find_runs
from flashdiff.report.runs import Run, method_label

COLUMNS = (("method", "method", "{}"), ("overrides", "overrides", "{}"), ("n", "n_images", "{}"),
           ("PSNR", "psnr", "{:.2f}"), ("SSIM", "ssim", "{:.3f}"), ("LPIPS", "lpips", "{:.4f}"),
           ("NFE", "nfe_mean", "{:.1f}"), ("s/image", "seconds_per_image", "{:.3f}"))


def collect_runs(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Every ``summary.json`` under the given run or multirun folders (``flashdiff.report.folders``), each with its
    folder as ``"run_dir"`` and its command-line overrides as ``"overrides"``; ``InputError`` for a path with none."""
    runs = []
    for path in map(Path, paths):
        found = [r for r in find_runs(path, ("summary.json",)) if r.summary]
        if not found:
            raise InputError(f"{path}: no readable summary.json (is it a flashdiff run or multirun folder?)")
        runs += [table_row(r) for r in found]
    return runs


def table_row(run: RunFolder) -> dict[str, Any]:
    """A run's summary with its folder as ``"run_dir"`` and its command-line overrides as ``"overrides"``."""
    return run.summary | {"run_dir": str(run.folder), "overrides": " ".join(run.arguments)}


def _fmt(fmt: str, value: Any) -> str:
    """A table cell; '–' for missing or null values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def markdown_table(runs: list[dict[str, Any]]) -> str:
    """A markdown table: one row per run, PSNR / SSIM / LPIPS / mean NFE / seconds per image."""
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for run in runs:
        lines.append("| " + " | ".join(_fmt(fmt, run.get(key)) for _, key, fmt in COLUMNS) + " |")
    return "\n".join(lines)


# Table 1 of the paper: rows = methods, grouped by task; (header, summary key, format, better)
TABLE1 = (("PSNR", "psnr", "{:.2f}", max), ("SSIM", "ssim", "{:.3f}", max), ("LPIPS", "lpips", "{:.4f}", min),
          ("FID", "fid", "{:.2f}", min), ("fd_toy", "fd_toy", "{:.4f}", min), ("NFE̅", "nfe_mean", "{:.1f}", min))
TRAINING_NOISE = 0.05  # σ_y of every task; another test noise level is a task of its own in the table


def task_name(run: Run) -> str:
    """The table group of a run: operator, σ_y when it is not the tasks' 0.05, and the images (their number and the
    seed), so that rows compared within a group saw the same measurements."""
    noise, seed = run.noise_std, run.config("seed", default=0)
    return (str(run.get("operator")) + ("" if noise is None or noise == TRAINING_NOISE else f", σ_y={noise:g}")
            + f", {run.get('n_images')} images" + (f", seed {seed}" if seed else ""))


def row_labels(runs: list[Run]) -> list[str]:
    """Method labels; runs sharing one get their severity encoder when that tells them apart, else the overrides
    that do, e.g. ``Flash(Latent-DPS) [encoder toy_severity_inpaint]`` or ``[solver.eta=3.0]``."""
    labels = [method_label(r) for r in runs]
    for label in set(labels):
        same = [k for k, lab in enumerate(labels) if lab == label]
        if len(same) < 2:
            continue
        if len({runs[k].encoder for k in same}) == len(same):
            for k in same:
                labels[k] = f"{label} [encoder {runs[k].encoder}]"
            continue
        common = set.intersection(*(set(runs[k].arguments) for k in same))
        for k in same:
            extra = " ".join(t for t in runs[k].arguments if t not in common)
            labels[k] = f"{label} [{extra or runs[k].folder.name}]"
    return labels


def _best(values: list[Any], better: Any) -> Any:
    """The best non-missing value of a column (None when none is present)."""
    present = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return better(present) if present else None


def table1(runs: list[Run]) -> tuple[str, str]:
    """Markdown and CSV text of a Table-1-style table: per task, one row per method; the best value per column and
    task is bold in the markdown and listed in the CSV's ``best`` column. Unavailable metrics: '–', reasons below."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[task_name(run)].append(run)
    header = ["method", "n", *(h for h, *_ in TABLE1)]
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["task", "method", "n_images", *(k for _, k, *_ in TABLE1), "best", "run_dir"])
    reasons: dict[str, set[str]] = defaultdict(set)
    for task, members in groups.items():
        md.append(f"| **{task}** |" + " |" * (len(header) - 1))
        best = {key: _best([r.get(key) for r in members], better) for _, key, _, better in TABLE1}
        for run, label in zip(members, row_labels(members)):
            cells, wins = [], []
            for _, key, fmt, _ in TABLE1:
                value = run.get(key)
                cell = _fmt(fmt, value)
                if value is not None and value == best[key] and len(members) > 1:
                    cell, wins = f"**{cell}**", [*wins, key]
                cells.append(cell)
            md.append(f"| {label} | {run.get('n_images')} | " + " | ".join(cells) + " |")
            out.writerow([task, label, run.get("n_images"), *(run.get(k) for _, k, *_ in TABLE1), ";".join(wins),
                          str(run.folder)])
            for key, why in (run.get("unavailable") or {}).items():
                reasons[key].add(why)
    notes = [f"- {key}: {why}" for key in sorted(reasons) for why in sorted(reasons[key])]
    legend = "Best per task in bold (higher PSNR/SSIM, lower LPIPS/FID/fd_toy/NFE̅). fd_toy is the Fréchet distance " \
             "in the project's toy feature space (a toy proxy, not FID). FID and fd_toy over fewer images than " \
             "feature dimensions (2048 / 64) are strongly biased: compare them only within one task group."
    text = "\n".join(md) + "\n\n" + legend + ("\n\nUnavailable:\n" + "\n".join(notes) if notes else "") + "\n"
    return text, buf.getvalue()

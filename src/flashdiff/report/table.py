"""Side-by-side tables of runs, read from their ``summary.json`` files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

COLUMNS = (("method", "method", "{}"), ("overrides", "overrides", "{}"), ("n", "n_images", "{}"),
           ("PSNR", "psnr", "{:.2f}"), ("SSIM", "ssim", "{:.3f}"), ("LPIPS", "lpips", "{:.4f}"),
           ("NFE", "nfe_mean", "{:.1f}"), ("s/image", "seconds_per_image", "{:.3f}"))


def collect_runs(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Every ``summary.json`` under the given run or multirun folders, with its folder as ``"run_dir"``."""
    runs = []
    for path in map(Path, paths):
        files = [path] if path.name == "summary.json" else sorted(path.rglob("summary.json"))
        if not files:
            raise FileNotFoundError(f"{path}: no summary.json (is it a flashdiff run or multirun folder?)")
        for f in files:
            overrides = f.parent / ".hydra" / "overrides.yaml"
            changed = [line[2:].strip() for line in overrides.read_text().splitlines() if line.startswith("- ")] \
                if overrides.exists() else []
            runs.append(json.loads(f.read_text()) | {"run_dir": str(f.parent), "overrides": " ".join(changed)})
    return runs


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

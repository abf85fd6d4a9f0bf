"""``python -m flashdiff.select SWEEP_DIR``: the best point of a sweep by one metric, optionally written as a preset.

A sweep point is a run folder with ``summary.json`` and Hydra's ``.hydra/overrides.yaml``. The metric is LPIPS by
default (lower is better, as the paper tunes); when any point has no LPIPS (weights unavailable, see summary.json
``unavailable``) the choice falls back to PSNR and says so. ``--value KEY`` prints only the best point's value of
KEY, for the next stage of a greedy search (``solver.eta=$(python -m flashdiff.select DIR --value solver.eta)``);
``--write FILE`` writes the swept keys of the best point as a ``# @package _global_`` preset.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flashdiff.records import RESULT_NEUTRAL as VOLATILE  # keys that change no image's result
from flashdiff.records import read_summary

LOWER_IS_BETTER = {"lpips": True, "fid": True, "fd_toy": True, "toy_feature_mse": True, "nfe_mean": True,
                   "seconds_per_image": True, "psnr": False, "ssim": False,
                   # training sweeps (training.json of each point's model): validation statistics
                   "val_ordering_accuracy": False, "val_spearman": False, "val_loss": True, "val_psnr": False}
FALLBACK = "psnr"


@dataclass
class Point:
    """One finished run of a sweep: its folder, its command-line overrides (``key -> value text``), its summary."""

    run_dir: Path
    overrides: dict[str, str]
    summary: dict[str, Any]


def _overrides(run_dir: Path) -> dict[str, str]:
    """``key -> value`` of a run's ``.hydra/overrides.yaml`` (``+``/``++`` prefixes dropped)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.exists() else []
    pairs = (str(item).split("=", 1) for item in items or [] if "=" in str(item))
    return {key.lstrip("+"): value for key, value in pairs}


def _run_dir(record: Path) -> Path:
    """The run folder of a record: the nearest folder above it holding Hydra's ``.hydra``."""
    return next((d for d in record.parents if (d / ".hydra").is_dir()), record.parent)


def load_points(sweep_dir: str | Path) -> list[Point]:
    """Every run under ``sweep_dir`` (itself included), in folder order: reconstruction runs by their
    ``summary.json``; in a training sweep (no summary.json), each point's ``training.json``."""
    root = Path(sweep_dir)
    files = sorted(root.rglob("summary.json")) or sorted(root.rglob("training.json"))
    if not files:
        raise FileNotFoundError(f"{root}: no summary.json or training.json below it (is it a finished sweep folder?)")
    return [Point(_run_dir(f), _overrides(_run_dir(f)), json.loads(f.read_text())) for f in files]


def _size(point: Point) -> str:
    """How much a point holds: its images (reconstruction) or its training steps."""
    if "n_images" in point.summary:
        return f"{point.summary['n_images']} images"
    return f"{point.summary.get('steps')} steps"


def swept_keys(points: list[Point]) -> list[str]:
    """The override keys whose values differ between points, in first-seen order (every key for a single point)."""
    keys = list(dict.fromkeys(k for p in points for k in p.overrides if k.split(".")[0] not in VOLATILE))
    varying = [k for k in keys if len({p.overrides.get(k) for p in points}) > 1]
    return varying or [k for k in keys if k not in ("sweep", "experiment")]


def _value(summary: dict[str, Any], metric: str) -> float | None:
    """A summary's value of ``metric`` as a float; None when missing, null or NaN."""
    value = summary.get(metric)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def choose_metric(points: list[Point], metric: str) -> tuple[str, str | None]:
    """``metric`` when every point has it, else PSNR with the reason (e.g. LPIPS weights not available)."""
    if metric not in LOWER_IS_BETTER:
        raise ValueError(f"--metric {metric}: one of {sorted(LOWER_IS_BETTER)}")
    lacking = [p for p in points if _value(p.summary, metric) is None]
    if not lacking:
        return metric, None
    reason = lacking[0].summary.get("unavailable", {}).get(metric) or "missing from summary.json"
    if metric == FALLBACK or any(_value(p.summary, FALLBACK) is None for p in points):
        raise ValueError(f"{lacking[0].run_dir}: no {metric} ({reason}); pick another with --metric")
    return FALLBACK, f"{metric} unavailable in {len(lacking)} of {len(points)} points ({reason}); chose by {FALLBACK}"


def ranked(points: list[Point], metric: str) -> list[Point]:
    """The points best first by ``metric`` (ties keep folder order)."""
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
    return sorted(points, key=lambda p: sign * _value(p.summary, metric))


def complete(points: list[Point]) -> tuple[list[Point], list[Point]]:
    """(points with the most images or steps, the others): a point still running or cut short is not compared."""
    size = lambda p: int(p.summary.get("n_images", p.summary.get("steps")) or 0)  # noqa: E731
    most = max(size(p) for p in points)
    return [p for p in points if size(p) == most], [p for p in points if size(p) != most]


def config_value(point: Point, key: str) -> Any:
    """The value of a dotted config key at a point: its override when set, else its resolved config."""
    if key in point.overrides:
        return yaml.safe_load(point.overrides[key])
    node: Any = point.summary.get("config", {})
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{point.run_dir}: no config key {key}")
        node = node[part]
    return node


def preset_yaml(point: Point, keys: list[str], metric: str, note: str | None = None) -> str:
    """A ``# @package _global_`` preset setting ``keys`` to the point's values (group choices as defaults)."""
    choices = {k: point.overrides[k] for k in keys if "." not in k and k in point.overrides}
    values: dict[str, Any] = {}
    for key in (k for k in keys if "." in k):
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = config_value(point, key)
    score = f"{_value(point.summary, metric):.6g}"
    head = ["# @package _global_", f"# Best point by {metric} ({score}, {_size(point)}): {point.run_dir}",
            "# written by python -m flashdiff.select" + (f"; {note}" if note else "")]
    body = {"defaults": [{f"override /{k}": v} for k, v in choices.items()]} if choices else {}
    return "\n".join(head) + "\n" + yaml.safe_dump(body | values, sort_keys=False)


def finished_point(summary_file: str | Path, expected: int, fingerprint: str) -> dict[str, Any] | None:
    """The summary of a run folder already finished with ``expected`` images of the config with ``fingerprint``
    (``flashdiff.records.fingerprint``), else None: a restarted sweep skips such a point without loading any model.
    An unreadable summary.json counts as absent (with a warning): the point is recomputed."""
    summary = read_summary(summary_file)
    if summary is None or summary.get("n_images") != expected or summary.get("fingerprint") != fingerprint:
        return None
    return summary


def objective(summary: dict[str, Any], metric: str) -> float:
    """The value a sweeper optimises (``objective: <metric>``); an unavailable metric is an error with its reason."""
    value = _value(summary, metric)
    if value is None:
        reason = summary.get("unavailable", {}).get(metric, "missing from summary.json")
        raise ValueError(f"objective={metric} is unavailable ({reason}); set objective=psnr and direction=maximize")
    return value


def _table(points: list[Point], keys: list[str], metric: str) -> str:
    """A markdown table of the ranked points: swept keys, size, the metric, then PSNR, SSIM, mean NFE (training
    points: validation ordering accuracy, Spearman, loss)."""
    training = "n_images" not in points[0].summary
    others = ("val_ordering_accuracy", "val_spearman", "val_loss") if training else ("psnr", "ssim", "nfe_mean")
    cols = [*keys, "steps" if training else "n", metric, *(m for m in others if m != metric)]
    fmt = lambda v: "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for p in points:
        cells = [p.overrides.get(k, "") for k in keys] + [fmt(p.summary.get("steps" if training else "n_images"))]
        cells += [fmt(_value(p.summary, m)) for m in cols[len(keys) + 1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _best_line(point: Point, keys: list[str], metric: str) -> str:
    """``key=value ... (metric value, size) in run_dir``."""
    chosen = " ".join(f"{k}={point.overrides[k]}" for k in keys if k in point.overrides)
    return f"{chosen} ({metric} {_value(point.summary, metric):.6g}, {_size(point)}) in {point.run_dir}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flashdiff.select", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a multirun folder (hydra.sweep.dir) or any folder of runs")
    parser.add_argument("--metric", default="lpips", help="lpips (default), psnr, ssim, fid, fd_toy, nfe_mean; "
                        "training sweeps: val_ordering_accuracy, val_spearman, val_loss")
    parser.add_argument("--value", metavar="KEY", help="print only the best point's value of KEY (e.g. solver.eta)")
    parser.add_argument("--by", metavar="KEYS", help="comma-separated keys: the best point for each of their values "
                        "(e.g. solver.num_steps,solver.delta)")
    parser.add_argument("--write", metavar="FILE", help="write the best point's swept keys as a preset yaml")
    args = parser.parse_args(argv)
    points, partial = complete(load_points(args.sweep_dir))
    metric, note = choose_metric(points, args.metric)
    best = ranked(points, metric)
    if note:
        print(f"note: {note}", file=sys.stderr if args.value else sys.stdout)
    if args.value:
        print(config_value(best[0], args.value))
        return
    keys = swept_keys(points)
    print(_table(best, keys, metric))
    for p in partial:
        print(f"not compared (only {_size(p)}): {p.run_dir}")
    if args.by:
        by = args.by.split(",")
        groups: dict[tuple[str, ...], list[Point]] = {}
        for p in best:  # best first, so each group's first point is its best
            groups.setdefault(tuple(f"{k}={config_value(p, k)}" for k in by), []).append(p)
        for values, group in groups.items():
            print(f"best by {metric} at {' '.join(values)}: {_best_line(group[0], keys, metric)}")
        return
    print(f"best by {metric}: {_best_line(best[0], keys, metric)}")
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(preset_yaml(best[0], keys, metric, note))
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main(sys.argv[1:])

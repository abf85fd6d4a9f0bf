"""``python -m flashdiff.select SWEEP_DIR``: the best point of a sweep by one metric, optionally written as a preset.

A sweep point is a run folder with ``summary.json`` and Hydra's ``.hydra/overrides.yaml`` (read by
``flashdiff.report.folders``). The metric is LPIPS by default (lower is better, as the paper tunes); when any point has
no LPIPS (weights unavailable, see summary.json ``unavailable``) the choice falls back to PSNR and says so. A point
with failed images (``n_failed``: their means leave those images out) is marked and chosen only when every point has
some. ``--value KEY`` prints only the best point's value of KEY, for the next stage of a greedy search
(``solver.eta=$(python -m flashdiff.select DIR --value solver.eta)``); ``--write FILE`` writes the best point's
swept keys, and the tuned keys every point set, as a ``# @package _global_`` preset
(``conf/tuned/<experiment>/<solver>_<adapter>.yaml`` is the file the experiments read).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import yaml

from flashdiff.console import ArgumentParser, run
from flashdiff.errors import ConfigError, InputError
from flashdiff.records import RESULT_NEUTRAL as VOLATILE  # keys that change no image's result
from flashdiff.report.folders import RunFolder, find_runs

LOWER_IS_BETTER = {"lpips": True, "fid": True, "fd_toy": True, "toy_feature_mse": True, "nfe_mean": True,
                   "seconds_per_image": True, "psnr": False, "ssim": False,
                   # training sweeps (training.json of each point's model): validation statistics
                   "val_ordering_accuracy": False, "val_spearman": False, "val_loss": True, "val_psnr": False}
FALLBACK = "psnr"
TUNED_KEYS = ("solver.eta", "solver.gamma", "solver.omega", "adapter.c")
"""The keys of conf/tuned/ presets: ``--write`` keeps them when every point set them (an earlier stage's value)."""


def load_points(sweep_dir: str | Path) -> list[RunFolder]:
    """Every run under ``sweep_dir`` (itself included), in folder order: reconstruction runs by their
    ``summary.json``; in a training sweep (no summary.json), each point's ``training.json``."""
    points = find_runs(sweep_dir)
    if not points:
        raise InputError(f"{sweep_dir}: no summary.json or training.json below it (is it a finished sweep folder?)")
    return points


def _size(point: RunFolder) -> str:
    """How much a point holds: its images (reconstruction) or its training steps."""
    if not point.summary:
        return "an unreadable summary"
    if "n_images" in point.summary:
        return f"{point.summary['n_images']} images"
    return f"{point.summary.get('steps')} steps"


def swept_keys(points: list[RunFolder]) -> list[str]:
    """The override keys whose values differ between points, in first-seen order (every key for a single point)."""
    keys = list(dict.fromkeys(k for p in points for k in p.overrides if k.split(".")[0] not in VOLATILE))
    varying = [k for k in keys if len({p.overrides.get(k) for p in points}) > 1]
    return varying or [k for k in keys if k not in ("sweep", "experiment")]


def preset_keys(points: list[RunFolder]) -> list[str]:
    """What ``--write`` writes: the swept keys, then the tuned keys set on every point's command line (the value an
    earlier stage of a greedy search chose, e.g. ``solver.eta`` in a ``solver.gamma`` sweep)."""
    keys = swept_keys(points)
    return keys + [k for k in TUNED_KEYS if k not in keys and all(k in p.overrides for p in points)]


def _value(summary: dict[str, Any], metric: str) -> float | None:
    """A summary's value of ``metric`` as a float; None when missing, null or NaN."""
    value = summary.get(metric)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def choose_metric(points: list[RunFolder], metric: str) -> tuple[str, str | None]:
    """``metric`` when every point has it, else PSNR with the reason (e.g. LPIPS weights not available)."""
    if metric not in LOWER_IS_BETTER:
        raise ConfigError(f"--metric {metric}: one of {sorted(LOWER_IS_BETTER)}")
    lacking = [p for p in points if _value(p.summary, metric) is None]
    if not lacking:
        return metric, None
    reason = lacking[0].summary.get("unavailable", {}).get(metric) or "missing from summary.json"
    if metric == FALLBACK or any(_value(p.summary, FALLBACK) is None for p in points):
        raise ConfigError(f"{lacking[0].folder}: no {metric} ({reason}); pick another with --metric")
    return FALLBACK, f"{metric} unavailable in {len(lacking)} of {len(points)} points ({reason}); chose by {FALLBACK}"


def ranked(points: list[RunFolder], metric: str) -> list[RunFolder]:
    """The points best first by ``metric``, those with failed images after the others (ties keep folder order)."""
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
    return sorted(points, key=lambda p: (p.n_failed > 0, sign * _value(p.summary, metric)))


def failure_note(best: list[RunFolder], metric: str) -> str | None:
    """Why the chosen point is not simply the best value: better points with failed images were passed over, or
    every point has failed images (then the best of them is chosen, marked)."""
    failed = [p for p in best if p.n_failed]
    if not failed:
        return None
    if len(failed) == len(best):
        return f"every point has failed images (non-finite results, left out of its means); chose by {metric} anyway"
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
    better = [p for p in failed if sign * _value(p.summary, metric) < sign * _value(best[0].summary, metric)]
    if not better:
        return None
    return (f"{len(better)} point(s) with a better {metric} have failed images (left out of their means), not "
            f"chosen: " + ", ".join(f"{p.folder} ({_failed_text(p)})" for p in better))


def _failed_text(point: RunFolder) -> str:
    """``2 of 32 images failed: id, id``."""
    ids = [str(i) for i in point.summary.get("failed_ids") or []]
    return f"{point.n_failed} of {point.summary.get('n_images')} images failed" + (
        f": {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''}" if ids else "")


def complete(points: list[RunFolder]) -> tuple[list[RunFolder], list[RunFolder]]:
    """(points with the most images or steps, the others): a point still running or cut short is not compared."""
    size = lambda p: int(p.summary.get("n_images", p.summary.get("steps")) or 0)  # noqa: E731
    most = max(size(p) for p in points)
    if most == 0:
        raise InputError(f"{points[0].folder}: no point of the sweep has a readable summary with images or steps")
    return [p for p in points if size(p) == most], [p for p in points if size(p) != most]


def config_value(point: RunFolder, key: str) -> Any:
    """The value of a dotted config key at a point: its override when set, else its recorded config."""
    if key in point.overrides:
        return yaml.safe_load(point.overrides[key])
    value = point.config(*key.split("."), default=KeyError)
    if value is KeyError:
        raise ConfigError(f"{point.folder}: no config key {key}")
    return value


def preset_yaml(point: RunFolder, keys: list[str], metric: str, note: str | None = None) -> str:
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
    failed = f"; {_failed_text(point)}" if point.n_failed else ""
    head = ["# @package _global_", f"# Best point by {metric} ({score}, {_size(point)}{failed}): {point.folder}",
            "# written by python -m flashdiff.select" + (f"; {note}" if note else "")]
    body = {"defaults": [{f"override /{k}": v} for k, v in choices.items()]} if choices else {}
    return "\n".join(head) + "\n" + yaml.safe_dump(body | values, sort_keys=False)


def objective(summary: dict[str, Any], metric: str) -> float:
    """The value a sweeper optimises (``objective: <metric>``); an unavailable metric is an error with its reason."""
    value = _value(summary, metric)
    if value is None:
        reason = summary.get("unavailable", {}).get(metric, "missing from summary.json")
        raise ConfigError(f"objective={metric} is unavailable ({reason}); set objective=psnr and direction=maximize")
    return value


def _table(points: list[RunFolder], keys: list[str], metric: str) -> str:
    """A markdown table of the ranked points: swept keys, size, failed images (when any), the metric, then PSNR,
    SSIM, mean NFE (training points: validation ordering accuracy, Spearman, loss)."""
    training = "n_images" not in points[0].summary
    others = ("val_ordering_accuracy", "val_spearman", "val_loss") if training else ("psnr", "ssim", "nfe_mean")
    failed = ["failed"] if any(p.n_failed for p in points) else []
    cols = [*keys, "steps" if training else "n", *failed, metric, *(m for m in others if m != metric)]
    fmt = lambda v: "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for p in points:
        cells = [p.overrides.get(k, "") for k in keys] + [fmt(p.summary.get("steps" if training else "n_images"))]
        cells += [f"**{p.n_failed}**" if p.n_failed else "0"] if failed else []
        cells += [fmt(_value(p.summary, m)) for m in cols[len(keys) + 1 + len(failed):]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _best_line(point: RunFolder, keys: list[str], metric: str) -> str:
    """``key=value ... (metric value, size[, failed images]) in folder``."""
    chosen = " ".join(f"{k}={point.overrides[k]}" for k in keys if k in point.overrides)
    failed = f", {_failed_text(point)}" if point.n_failed else ""
    return f"{chosen} ({metric} {_value(point.summary, metric):.6g}, {_size(point)}{failed}) in {point.folder}"


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m flashdiff.select", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a multirun folder (hydra.sweep.dir) or any folder of runs")
    parser.add_argument("--metric", default="lpips", help="lpips (default), psnr, ssim, fid, fd_toy, nfe_mean; "
                        "training sweeps: val_ordering_accuracy, val_spearman, val_loss")
    parser.add_argument("--value", metavar="KEY", help="print only the best point's value of KEY (e.g. solver.eta)")
    parser.add_argument("--by", metavar="KEYS", help="comma-separated keys: the best point for each of their values "
                        "(e.g. solver.num_steps,solver.delta)")
    parser.add_argument("--write", metavar="FILE", help="write the best point's swept keys (and the tuned keys every "
                        "point set) as a preset, e.g. conf/tuned/<experiment>/<solver>_<adapter>.yaml")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Rank the points of a sweep folder and print the table and the best point (or only ``--value``)."""
    args = _parser().parse_args(argv)
    points, partial = complete(load_points(args.sweep_dir))
    metric, note = choose_metric(points, args.metric)
    best = ranked(points, metric)
    notes = [n for n in (note, failure_note(best, metric)) if n]
    for line in notes:
        print(f"note: {line}", file=sys.stderr if args.value else sys.stdout)
    if args.value:
        print(config_value(best[0], args.value))
        return
    keys = swept_keys(points)
    print(_table(best, keys, metric))
    for p in partial:
        print(f"not compared (only {_size(p)}): {p.folder}")
    if args.by:
        by = args.by.split(",")
        groups: dict[tuple[str, ...], list[RunFolder]] = {}
        for p in best:  # best first, so each group's first point is its best
            groups.setdefault(tuple(f"{k}={config_value(p, k)}" for k in by), []).append(p)
        for values, group in groups.items():
            print(f"best by {metric} at {' '.join(values)}: {_best_line(group[0], keys, metric)}")
        return
    print(f"best by {metric}: {_best_line(best[0], keys, metric)}")
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(preset_yaml(best[0], preset_keys(points), metric, "; ".join(notes) or None))
        print(f"wrote {args.write}")


if __name__ == "__main__":
    run(main, "flashdiff.select")

"""The reconstruction job behind ``python -m flashdiff``: reconstruct the test images with ``flashdiff.reconstruct``
and write per-image records as each image finishes (samples.csv, images/, clean/, measurements/), then summary.json.
No Hydra here: the CLI builds the objects and passes plain settings."""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image
from tqdm.auto import tqdm

from flashdiff.distributed import barrier, broadcast, is_main_process, merge_rows, rank_and_world, shard_file, share
from flashdiff.engine import EngineStats
from flashdiff.errors import RecordError
from flashdiff.metrics import ImageMetrics, MetricSettings, psnr, run_metrics, ssim
from flashdiff.metrics.draws import draw_summary
from flashdiff.precision import peak_memory
from flashdiff.reconstruction import Result, plan, reconstruct_batches
from flashdiff.records import (
    RESULT_NEUTRAL,
    append_samples,
    fingerprint,
    image_name,
    read_samples,
    read_summary,
    write_atomic,
    write_summary,
)
from flashdiff.tracking import log_reconstruction
from flashdiff.types import COUNTERS, Adapter, DiffusionSolver, LatentModel, Operator, Restorer

log = logging.getLogger(__name__)


@dataclass
class RunSettings:
    """How a run goes through its images; none of these changes an image's result (except ``seed``, ``precision``)."""

    num_images: int | None = None  # cap on the number of test images (None = all)
    batch_size: int = 16  # engine slots
    batching: str = "continuous"  # or "static"
    order: str = "longest_first"  # admission order of continuous batching, or "fifo"
    lookahead: int | None = None  # samples prepared ahead of admission (None: 4 × batch_size)
    seed: int = 0  # mixed into every image's seed
    precision: str = "fp32"  # fp32 | bf16 | fp16 (resolved: no "auto" here)
    samples_per_image: int = 1  # K independent trajectories per image (draws 0..K-1)


def _grid_image(path: Path, results: list[Result], n: int = 8) -> None:
    """``grid.png``: rows clean | measurement | reconstruction for the first ``n`` images of the run."""
    rs = sorted(results, key=lambda r: r.index)[:n]
    rows = [torch.stack([r.x for r in rs])] if rs[0].x is not None else []
    rows += [torch.stack([r.y.clamp(0, 1) for r in rs]), torch.stack([r.x_hat for r in rs])]
    save_image(torch.cat(rows), path, nrow=len(rs), padding=1)


def _rows(results: list[Result], metrics: ImageMetrics) -> list[dict[str, Any]]:
    """One ``samples.csv`` row per finished image, metrics computed over the chunk at once; a failed image (its
    reconstruction not finite) gets ``nan`` metrics, recorded as such."""
    x_hat = torch.nan_to_num(torch.stack([r.x_hat for r in results]), nan=0.0)
    x = torch.stack([r.x for r in results])
    scores = {"psnr": psnr(x_hat, x).tolist(), "ssim": ssim(x_hat, x).tolist()}
    perceptual = metrics.rows(x_hat, x)
    rows = []
    for b, r in enumerate(results):
        values = {k: v[b] for k, v in scores.items()} | perceptual[b]
        if not r.finite:
            values = {k: (None if v is None else math.nan) for k, v in values.items()}
        rows.append({"index": r.index, "draw": r.draw, "image_id": r.id, "severity": r.severity,
                     "sigma2_hat": r.sigma2_hat,
                     "t_start": r.t_start, "nfe": r.nfe, "seconds": r.seconds, **r.costs} | values)
    return rows


def _save_images(out: Path, results: list[Result]) -> None:
    """``images/`` PNG of each finished draw; ``clean/`` and ``measurements/`` once per image (named by its index)."""
    for r in results:
        save_image(torch.nan_to_num(r.x_hat), out / "images" / image_name(r.index, r.draw))
        name = f"{r.index:05d}.png"
        if r.draw == 0 or not (out / "clean" / name).exists():
            save_image(r.x, out / "clean" / name)
            save_image(r.y.clamp(0, 1), out / "measurements" / name)


@torch.no_grad()
def evaluate(out: Path, dataset: Any, operator: Operator, model: LatentModel, solver: DiffusionSolver | Restorer,
             adapter: Adapter | None, *, settings: RunSettings, metric_settings: MetricSettings,
             info: dict[str, Any], device: torch.device, run: Any = None) -> dict[str, Any]:
    """Reconstruct the first ``num_images`` test images into ``out`` (resuming what it holds); returns the summary.

    ``info``: what the summary reports about the run (method, choices, resolved config). The caller holds the
    folder's lock (``flashdiff.records.run_lock``) and has checked that the folder's records are this config's.
    """
    for folder in ("images", "clean", "measurements"):  # reconstructions | FID's reference | the report's gallery
        (out / folder).mkdir(parents=True, exist_ok=True)
    n = len(dataset) if settings.num_images is None else min(int(settings.num_images), len(dataset))
    k_draws = int(settings.samples_per_image)
    merge_rows(out)  # rows an interrupted multi-process run left in its shards count as done
    done = {(int(r["index"]), int(r["draw"])) for r in read_samples(out / "samples.csv")}
    todo = [(k, d) for k in range(n) for d in range(k_draws) if (k, d) not in done]
    if done:
        finished = len({k for k, _ in done if k < n and all((k, d) in done for d in range(k_draws))})
        log.info("resuming in %s: %d of %d images already done", out, finished, n)
    rank, world = rank_and_world()  # several processes (accelerate launch): each takes every world-th image
    mine = share(todo, rank, world)
    metrics = ImageMetrics(metric_settings, device)  # LPIPS and the toy feature distance, per image
    stats = EngineStats(int(settings.batch_size))
    if hasattr(adapter, "plan"):
        _run_plan(out, adapter, (dataset[k] for k in range(n)), operator, model, solver, settings, device)
    bar = tqdm(total=len(mine), desc=info["method"], unit="img", dynamic_ncols=True, disable=rank != 0)
    first = [] if rank == 0 and not (out / "grid.png").exists() else None
    items = (dataset[k] | {"draw": d} for k, d in mine)
    try:
        for results in reconstruct_batches(items, operator, model, solver, adapter, batch_size=settings.batch_size,
                                           device=device, batching=settings.batching, order=settings.order,
                                           lookahead=settings.lookahead, seed=settings.seed,
                                           precision=settings.precision, stats=stats, samples_per_image=k_draws):
            _save_images(out, results)
            append_samples(shard_file(out, rank, world), _rows(results, metrics))
            bar.update(len(results))
            bar.set_postfix(busy=f"{stats.busy}/{stats.slots}", occupancy=f"{stats.occupancy:.2f}",
                            nfe=f"{sum(r.nfe for r in results) / len(results):.0f}")
            if first is not None and len(first) < 8:
                first += results
    finally:
        bar.close()
        _add_engine_stats(out, rank, stats, settings, device)
    if first:
        _grid_image(out / "grid.png", [r for r in first if r.draw == 0] or first)
    merge_rows(out)  # the main process folds every process's rows into samples.csv, then summarises alone
    summary = summarise(out, info, metric_settings, run, device) if is_main_process() else None
    barrier()
    return summary if summary is not None else json.loads((out / "summary.json").read_text())


def _run_plan(out: Path, adapter: Adapter, data: Any, operator: Operator, model: LatentModel, solver: DiffusionSolver,
              settings: RunSettings, device: torch.device) -> None:
    """The run's plan (``flash_budget``'s α): ``plan.json`` where the folder has one (a resumed run keeps its plan,
    whatever its image set), else made once by the main process over the run's images and stored; every process
    then takes it."""
    path = out / "plan.json"
    if is_main_process() and not path.exists():
        planned = plan(adapter, model, operator, solver, data, batch_size=settings.batch_size, device=device,
                       seed=settings.seed, precision=settings.precision)
        write_atomic(path, json.dumps(planned, indent=2) + "\n")
    barrier()
    planned = json.loads(path.read_text())
    if planned != getattr(adapter, "planned", None):
        log.info("flash_budget: the plan of %s (alpha %.4g over %d images) is reused", path, planned["alpha"],
                 planned["images"])
    adapter.restore(planned)


def _add_engine_stats(out: Path, rank: int, stats: EngineStats, settings: RunSettings, device: torch.device) -> None:
    """Append this session's engine counters and peak memory to ``engine.rank<r>.jsonl`` (into summary.json)."""
    line = {"slots": stats.slots, "batched_steps": stats.batched_steps, "busy_slot_steps": stats.busy_slot_steps,
            "batching": settings.batching, "order": settings.order, "precision": settings.precision,
            **peak_memory(device)}
    with open(out / f"engine.rank{rank}.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def engine_summary(out: Path) -> dict[str, Any]:
    """``batched_steps`` (summed over processes and sessions), ``occupancy`` = busy slot-steps / (slots × steps) and
    the largest peak memory of any process and session (CUDA max allocated, or peak RSS on the CPU)."""
    lines = [json.loads(line) for f in sorted(out.glob("engine.rank*.jsonl")) for line in f.read_text().splitlines()
             if line.strip()]
    steps = sum(x["batched_steps"] for x in lines)
    capacity = sum(x["slots"] * x["batched_steps"] for x in lines)
    peak = max(lines, key=lambda x: x.get("peak_memory_gib", 0.0), default={})
    return {"batched_steps": steps,
            "occupancy": sum(x["busy_slot_steps"] for x in lines) / capacity if capacity else None,
            "peak_memory_gib": peak.get("peak_memory_gib"), "peak_memory_kind": peak.get("peak_memory_kind")}


def _finite(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(rows whose PSNR and SSIM are finite numbers, the failed ones: a NaN/inf reconstruction or metric)."""
    ok = lambda r: all(r[k] != "" and math.isfinite(float(r[k])) for k in ("psnr", "ssim"))  # noqa: E731
    return [r for r in rows if ok(r)], [r for r in rows if not ok(r)]


def summarise(out: Path, info: dict[str, Any], metric_settings: MetricSettings, run: Any = None,
              device: torch.device | str = "cpu") -> dict[str, Any]:
    """``summary.json`` from ``samples.csv`` and the run's image folders (never from memory); sent to the logger.

    Means are over the images whose result is finite (``n_scored``); failed images (NaN/inf) are counted in
    ``n_failed`` and listed in ``failed_ids``, never averaged in."""
    rows = read_samples(out / "samples.csv")
    good, failed = _finite(rows)
    perceptual = run_metrics(metric_settings, good, out / "images", out / "clean", device)
    draws = draw_summary(out, good) if any(r["draw"] != "0" for r in rows) else {}  # {} where no draw is finite
    mean = lambda key: sum(float(r[key]) for r in good) / len(good) if good else float("nan")  # noqa: E731
    summary = {
        "method": info["method"], "solver": info.get("solver"), "adapter": info.get("adapter"),
        "operator": info.get("operator"), "dataset": info.get("dataset"), "n_images": len({r["index"] for r in rows}),
        "n_draws": len(rows),
        "n_scored": len(good), "n_failed": len(failed), "failed_ids": [r["image_id"] for r in failed],
        "psnr": mean("psnr"), "ssim": mean("ssim"), **perceptual, "nfe_mean": mean("nfe"),
        "seconds_per_image": mean("seconds"), **{f"{name}_mean": mean(name) for name in COUNTERS},
        **draws, **engine_summary(out), **_plan(out), "fingerprint": info.get("fingerprint"),
        "config": info.get("config"),
    }
    write_summary(out / "summary.json", summary)
    log.info("%s on %d images: PSNR %.2f dB, SSIM %.3f, mean NFE %.1f, %.3f s/image; LPIPS %s, FID %s, fd_toy (toy "
             "features, not FID) %s -> %s", summary["method"], len(good), summary["psnr"], summary["ssim"],
             summary["nfe_mean"], summary["seconds_per_image"], *(_fmt(summary[k]) for k in ("lpips", "fid", "fd_toy")),
             out)
    if failed:
        log.warning("%d of %d images failed (non-finite reconstruction or metric), left out of the means: %s",
                    len(failed), len(rows), ", ".join(summary["failed_ids"][:10]))
    if run is not None:
        log_reconstruction(run, summary, good, out)
    return summary


def _plan(out: Path) -> dict[str, Any]:
    """``adapter_plan``: what an adapter that allocates over the run decided (``plan.json``), where one did."""
    path = out / "plan.json"
    return {"adapter_plan": json.loads(path.read_text())} if path.exists() else {}


def _fmt(value: float | None) -> str:
    """A metric for the console: 4 significant digits, or 'unavailable' (the reason is in summary.json)."""
    return "unavailable" if value is None else f"{value:.4g}"


def run_record(out: Path, config: dict[str, Any], fingerprint: str) -> None:
    """Write ``run.json`` (the config fingerprint beside samples.csv) for a folder that has none."""
    if not (out / "run.json").exists():
        write_atomic(out / "run.json", json.dumps({"fingerprint": fingerprint, "config": config}, indent=2) + "\n")


def recorded_config(out: Path) -> dict[str, Any] | None:
    """The result-relevant config a run folder was written with (``run.json``, else its summary's), or None."""
    path = out / "run.json"
    if path.exists():
        try:
            return json.loads(path.read_text())["config"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            log.warning("%s is unreadable (%s): the folder's config is checked against summary.json", path, err)
    summary = read_summary(out / "summary.json")
    return None if summary is None else summary.get("config")


def claim_folder(out: Path, config: dict[str, Any], overwrite: bool = False) -> None:
    """Make sure ``out``'s records are this config's before anything is added: a folder written with another config
    is refused, naming the keys that differ (``overwrite=true`` moves its records aside into ``out/replaced/``)."""
    has_rows = bool(read_samples(out / "samples.csv")) or any(out.glob("samples.rank*.csv"))
    before = recorded_config(out)
    if before is not None:
        before = {k: v for k, v in before.items() if k not in RESULT_NEUTRAL}
        differs = _differing_keys(before, config)
    else:
        differs = ["unknown (the folder has rows but no run.json)"] if has_rows else []
    if differs and not overwrite:
        raise RecordError(f"{out} holds results of another config (differing: {', '.join(differs[:8])}); resume it "
                          "with the same config, give this run a new folder (hydra.run.dir=...), or pass "
                          "overwrite=true to move its records aside")
    if differs:
        aside = _aside(out)
        for path in [out / n for n in RUN_FILES] + [*out.glob("samples.rank*.csv"), *out.glob("engine.rank*.jsonl")]:
            if path.exists():
                shutil.move(str(path), str(aside / path.name))
        log.warning("overwrite=true: the former config's run (records and images) was moved to %s", aside)
    run_record(out, config, fingerprint(config))


RUN_FILES = ("samples.csv", "summary.json", "run.json", "plan.json", "grid.png", "uncertainty.png", "images", "clean",
             "measurements", "mean", "std")
"""What a run writes into its folder (besides per-process shards and Hydra's own files): moved aside as a whole."""


def _aside(out: Path) -> Path:
    """A new ``out/replaced/<date-time>[-n]`` folder (never one that exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        aside = out / "replaced" / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            aside.mkdir(parents=True)
            return aside
        except FileExistsError:
            continue
    raise RecordError(f"{out / 'replaced'}: no free folder name for {stamp}; clean it up")


def claim_shared(out: Path, config: dict[str, Any], overwrite: bool = False) -> None:
    """``claim_folder`` by the main process only; the other processes wait for it and share its outcome (an error
    on the main process is raised on every process, so none waits forever)."""
    error = None
    if is_main_process():
        try:
            claim_folder(out, config, overwrite)
        except RecordError as err:
            error = str(err)
    error = broadcast(error)
    if error is not None:
        raise RecordError(error)


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in sorted(set(a) | set(b), key=str)
                for k in _differing_keys(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]

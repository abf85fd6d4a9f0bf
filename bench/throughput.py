"""Benchmark: continuous vs static batching of the engine on the toy world (issue: reconstruction engine).

For each solver preset and batch size, every toy test crop is reconstructed twice through ``flashdiff.reconstruct``
(one process, the same objects): ``batching=static`` (a batch runs until its slowest sample is done) and
``batching=continuous`` (a finished sample's slot is refilled at once, longest predicted trajectory first).
Reported per mode: images/s and wall s/image, CPU s/image (the process's CPU time: with one thread, what the work
cost whatever else ran on the machine), occupancy (busy slot-steps / (slots × batched steps)), batched steps, mean
PSNR and NFE; and the largest per-image PSNR difference between the modes (results must not depend on batching).
Appended, with date, commit and machine, to bench/results/throughput.md.

Usage: .venv/bin/python bench/throughput.py [--num-images 124] [--batch-sizes 8 16 32] [--solvers latent_dps resample]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SOLVER_OVERRIDES = {"latent_dps": [], "resample": ["solver=resample"]}


def build(solver: str) -> dict:
    """Dataset, operator, model, solver and adapter of the default config (Flash on toy varying blur)."""
    return compose_parts(SOLVER_OVERRIDES[solver] + ["+experiment=toy_varblur"])


def compose_parts(overrides: list[str]) -> dict:
    """Dataset, operator, model, solver and adapter of the project config with these Hydra overrides."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    import flashdiff.paths  # noqa: F401  (registers ${flashdiff_root:})

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return {"dataset": instantiate(cfg.dataset), "operator": instantiate(cfg.operator),
            "model": instantiate(cfg.model), "solver": instantiate(cfg.solver),
            "adapter": instantiate(cfg.adapter).eval()}


def run(parts: dict, indices: Sequence[int], batch_size: int, batching: str) -> dict:
    """Reconstruct these test crops together; wall time, engine counters and per-image PSNR / NFE."""
    from flashdiff.engine import EngineStats
    from flashdiff.metrics import psnr
    from flashdiff.reconstruction import reconstruct

    stats = EngineStats(batch_size)
    n = len(indices)
    items = (parts["dataset"][k] for k in indices)
    started, cpu = time.perf_counter(), time.process_time()
    results = list(reconstruct(items, parts["operator"], parts["model"], parts["solver"], parts["adapter"],
                               batch_size=batch_size, batching=batching, stats=stats))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    by_index = {r.index: r for r in results}
    scores = {k: float(psnr(r.x_hat[None], r.x[None])) for k, r in by_index.items()}
    return {"batching": batching, "batch": batch_size, "seconds": seconds, "images_per_s": n / seconds,
            "cpu_s_per_image": cpu / n,
            "occupancy": stats.occupancy, "batched_steps": stats.batched_steps, "psnr": scores,
            "nfe": {k: r.nfe for k, r in by_index.items()}}


def table(rows: list[dict]) -> str:
    """Markdown rows: one per (solver, batch, mode), with the per-image agreement of the two modes."""
    lines = ["| solver | batch | batching | images/s | s/image | CPU s/image | occupancy | batched steps | PSNR | "
             "mean NFE | max per-image ΔPSNR vs static (dB) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        static = next(s for s in rows if s["solver"] == r["solver"] and s["batch"] == r["batch"]
                      and s["batching"] == "static")
        delta = max(abs(r["psnr"][k] - static["psnr"][k]) for k in r["psnr"])
        lines.append(f"| {r['solver']} | {r['batch']} | {r['batching']} | {r['images_per_s']:.2f} | "
                     f"{1 / r['images_per_s']:.3f} | {r['cpu_s_per_image']:.3f} | {r['occupancy']:.3f} | "
                     f"{r['batched_steps']} | "
                     f"{sum(r['psnr'].values()) / len(r['psnr']):.2f} | {sum(r['nfe'].values()) / len(r['nfe']):.1f} | "
                     f"{delta:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=124, help="toy test crops (124 = all)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--solvers", nargs="+", default=list(SOLVER_OVERRIDES), choices=list(SOLVER_OVERRIDES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, started = [], time.perf_counter()
    for solver in args.solvers:
        parts = build(solver)
        run(parts, range(min(4, args.num_images)), 4, "continuous")  # warm-up: lazy initialisation, allocator
        for batch in args.batch_sizes:
            for batching in ("static", "continuous"):
                row = run(parts, range(args.num_images), batch, batching) | {"solver": f"flash({solver})"}
                print(f"{row['solver']} batch {batch} {batching}: {row['images_per_s']:.2f} img/s, occupancy "
                      f"{row['occupancy']:.3f}, {row['batched_steps']} steps", flush=True)
                rows.append(row)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True, cwd=ROOT)
    head = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()}"
            f"{' + uncommitted src changes' if dirty.stdout.strip() else ''} · {platform.machine()}, "
            f"{os.cpu_count()} CPUs, {args.threads} torch threads, torch {torch.__version__} · "
            f"{args.num_images} toy test crops · {time.perf_counter() - started:.0f} s in all\n\n"
            f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(head + table(rows) + "\n")
    print(table(rows))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()

"""Benchmark: how far one image's reconstruction moves with the shape of the batch it runs in (float rounding).

Every random draw of flashdiff belongs to its sample, so a reconstruction does not depend on its batch up to float
rounding; but a batched convolution rounds a row differently when the batch has another size, and some
trajectories amplify that. For the chosen test images this reconstructs each one alone (``alone``: batch 1) and the
whole list under each ``B:static`` / ``B:continuous`` shape, in one process with the same objects, and appends the
per-image PSNR per shape and each image's spread (max - min) to bench/results/batch_shape.md with date, commit and
machine.

Usage: .venv/bin/python bench/batch_shape.py --indices 76-91 --shapes alone 16:static 8:static 16:continuous
       [--overrides +experiment=toy_varblur solver=resample] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from throughput import ROOT, compose_parts


def indices(spec: list[str]) -> list[int]:
    """``3 5 10-12`` -> [3, 5, 10, 11, 12]."""
    out = []
    for part in spec:
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def scores(parts: dict, idx: list[int], batch_size: int, batching: str) -> dict[int, float]:
    """PSNR of each image when ``idx`` are reconstructed together with this batch size and batching."""
    from flashdiff.metrics import psnr
    from flashdiff.reconstruction import reconstruct

    results = reconstruct((parts["dataset"][k] for k in idx), parts["operator"], parts["model"], parts["solver"],
                          parts["adapter"], batch_size=batch_size, batching=batching)
    return {r.index: float(psnr(r.x_hat[None], r.x[None])) for r in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indices", nargs="+", default=["76-91"], help="test image indices, ranges as 76-91")
    parser.add_argument("--shapes", nargs="+", default=["alone", "16:static", "8:static", "16:continuous"])
    parser.add_argument("--overrides", nargs="*", default=["+experiment=toy_varblur", "solver=resample"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "batch_shape.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    idx, started = indices(args.indices), time.perf_counter()
    parts = compose_parts(args.overrides)
    columns = {}
    for shape in args.shapes:
        if shape == "alone":
            columns[shape] = {k: v for i in idx for k, v in scores(parts, [i], 1, "static").items()}
        else:
            size, _, batching = shape.partition(":")
            columns[shape] = scores(parts, idx, int(size), batching or "continuous")
        print(shape, {k: round(v, 4) for k, v in columns[shape].items()}, flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()} · {platform.machine()}, "
             f"{os.cpu_count()} CPUs, {args.threads} torch threads, torch {torch.__version__} · "
             f"{time.perf_counter() - started:.0f} s in all\n",
             f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n",
             "| test index | " + " | ".join(args.shapes) + " | spread (dB) |",
             "|---|" + "---|" * (len(args.shapes) + 1)]
    for k in idx:
        row = [columns[s][k] for s in args.shapes]
        lines.append(f"| {k} | " + " | ".join(f"{v:.4f}" for v in row) + f" | {max(row) - min(row):.4f} |")
    spreads = sorted(max(columns[s][k] for s in args.shapes) - min(columns[s][k] for s in args.shapes) for k in idx)
    lines.append(f"\nLargest spread {spreads[-1]:.4f} dB; {sum(v < 1e-3 for v in spreads)} of {len(idx)} images "
                 "within 0.001 dB.")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()

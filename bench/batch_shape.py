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
import sys
import time
from pathlib import Path

import torch
from throughput import ROOT, compose_parts, run


def indices(spec: list[str]) -> list[int]:
    """``3 5 10-12`` -> [3, 5, 10, 11, 12]."""
    out = []
    for part in spec:
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indices", nargs="+", default=["76-91"], help="test image indices, ranges as 76-91")
    parser.add_argument("--shapes", nargs="+", default=["alone", "16:static", "8:static", "16:continuous"])
    parser.add_argument("--overrides", nargs="*", default=["+experiment=toy_varblur", "solver=resample"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "batch_shape.md"))
    args = parser.parse_args()
    from flashdiff.records import provenance

    torch.set_num_threads(args.threads)
    idx, started = indices(args.indices), time.perf_counter()
    parts = compose_parts(args.overrides)
    columns = {}
    for shape in args.shapes:
        if shape == "alone":
            columns[shape] = {k: v for i in idx for k, v in run(parts, [i], 1, "static")["psnr"].items()}
        else:
            size, _, batching = shape.partition(":")
            columns[shape] = run(parts, idx, int(size), batching or "continuous")["psnr"]
        print(shape, {k: round(v, 4) for k, v in columns[shape].items()}, flush=True)
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {provenance(ROOT)['commit']} · {platform.machine()}, "
             f"{os.cpu_count()} CPUs, {args.threads} torch threads, torch {torch.__version__} · "
             f"{time.perf_counter() - started:.0f} s in all\n",
             f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n",
             "| test index | " + " | ".join(args.shapes) + " | spread (dB) |",
             "|---|" + "---|" * (len(args.shapes) + 1)]
    spreads = []
    for k in idx:
        row = [columns[s][k] for s in args.shapes]
        spreads.append(max(row) - min(row))
        lines.append(f"| {k} | " + " | ".join(f"{v:.4f}" for v in row) + f" | {spreads[-1]:.4f} |")
    lines.append(f"\nLargest spread {max(spreads):.4f} dB; {sum(v < 1e-3 for v in spreads)} of {len(idx)} images "
                 "within 0.001 dB.")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()

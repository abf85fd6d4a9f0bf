"""Benchmark: what the engine's per-sample CPU noise costs per step (every draw from its sample's own generator).

Times ``flashdiff.diffusion.sampling.randn_rows`` for a batch of samples at the toy world's latents (4×16×16) and the
paper's LDM latents (3×64×64), against one batched ``torch.randn`` of the same size (what a device-side draw would
replace it with, giving up per-sample reproducibility). On a GPU the buffer is pinned and sent without blocking,
so the device does not wait for it; this is the host time the engine spends per step. Median of ``--repeats``.
Appended, with date, commit and machine, to bench/results/noise_cost.md.

Usage: .venv/bin/python bench/noise_cost.py [--batch 16] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from record import append_record

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"toy world (4×16×16)": (4, 16, 16), "paper LDM 256² (3×64×64)": (3, 64, 64)}


def median_ms(fn, repeats: int) -> float:  # noqa: ANN001
    """Median wall time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


def main() -> None:
    from flashdiff.data.seeding import generators
    from flashdiff.diffusion.sampling import randn_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "noise_cost.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gens, like = generators(range(args.batch)), torch.zeros(())
    lines = ["| latents | per-sample draws (ms/step) | one batched randn (ms/step) | per sample (µs) |",
             "|---|---|---|---|"]
    for name, shape in SHAPES.items():
        per_sample = median_ms(lambda s=shape: randn_rows(gens, s, like), args.repeats)
        batched = median_ms(lambda s=shape: torch.randn(args.batch, *s), args.repeats)
        lines.append(f"| {name} | {per_sample:.3f} | {batched:.3f} | {1e3 * per_sample / args.batch:.1f} |")
    append_record(args.out, args.threads, f"batch {args.batch}, median of {args.repeats}", lines)


if __name__ == "__main__":
    main()

"""Benchmark: the time of one batched reverse step of several solvers on the toy world, measured in one process.

Builds the bundled toy LDM and the toy varying-blur operator, measures ``--batch`` toy test crops, and times each
solver's ``step`` at the same batch (every row at training step 500 of its grid, per-sample noise), alternating the
solvers round by round so that drift on the machine hits all of them alike. Reports the median and quartiles of
``--repeats`` steps per solver and their ratio to the first; appended with date, commit and machine to
bench/results/step_time.md.

Usage: .venv/bin/python bench/step_time.py [--solvers latent_dps_ddim mpgd] [--batch 16] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from record import append_record

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from flashdiff.data import ToyImages
    from flashdiff.data.seeding import generators
    from flashdiff.diffusion import LatentDiffusion
    from flashdiff.diffusion.sampling import randn_rows
    from flashdiff.reconstruction import measure_chunk
    from flashdiff.toy import model_dir
    from flashdiff.types import COUNTERS, StepBatch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solvers", nargs="+", default=["latent_dps_ddim", "mpgd"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "step_time.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = LatentDiffusion.from_pretrained(model_dir("toy_ldm"))
    op = instantiate(OmegaConf.load(ROOT / "conf" / "operator" / "toy_blur_varying.yaml"))
    data = ToyImages(split="test", downscale=2)
    m = measure_chunk([data[k] for k in range(args.batch)], op, 0, torch.device("cpu"))
    solvers = {name: instantiate(OmegaConf.load(ROOT / "conf" / "solver" / f"{name}.yaml")) for name in args.solvers}
    gens = generators(range(args.batch))
    z = randn_rows(gens, model.latent_shape, m.y)
    times: dict[str, list[float]] = {name: [] for name in solvers}
    with torch.no_grad():
        for _ in range(args.repeats + 2):  # two warm-up rounds, dropped
            for name, solver in solvers.items():
                grid = solver.grid(model.schedule)
                k = int((grid - 500).abs().argmin())
                i = grid[k].repeat(args.batch)
                i_prev = (grid[k + 1] if k + 1 < len(grid) else torch.tensor(-1)).repeat(args.batch)
                counts = {c: torch.zeros(args.batch, dtype=torch.int64) for c in COUNTERS}
                batch = StepBatch(model=model, op=op, z=z, i=i, i_prev=i_prev, noise=randn_rows(gens, z.shape[1:], z),
                                  y=m.y, params=m.params, generators=gens, counts=counts, i_host=i)
                started = time.perf_counter()
                solver.step(batch)
                times[name].append(time.perf_counter() - started)
    first = statistics.median(times[args.solvers[0]][2:])
    lines = [f"| solver | median s/step | quartiles | per image (ms) | ÷ {args.solvers[0]} |", "|---|---|---|---|---|"]
    for name, ts in times.items():
        ts = ts[2:]
        q = statistics.quantiles(ts, n=4)
        med = statistics.median(ts)
        lines.append(f"| {name} | {med:.4f} | {q[0]:.4f}–{q[2]:.4f} | {1e3 * med / args.batch:.2f} | "
                     f"{med / first:.2f} |")
    details = f"batch {args.batch}, {args.repeats} steps each, toy LDM, toy varying blur, rows at step ≈500"
    append_record(args.out, args.threads, details, lines)


if __name__ == "__main__":
    main()

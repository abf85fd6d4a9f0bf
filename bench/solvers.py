"""Benchmark: every latent solver with and without Flash, on toy varying blur and toy inpainting (issue 4's bars).

For each experiment × solver it runs ``adapter=none`` (the solver from pure noise, its full grid) and
``adapter=flash`` on the same test images, each as its own ``python -m flashdiff`` process, and appends one
table (PSNR, SSIM, fd_toy, mean NFE, NFE ratio, ΔPSNR, s/image, the solvers' mean costs) with date, commit and machine
to bench/results/solvers.md.

The runs live in ``--workdir`` (one folder per experiment × solver × adapter × image count), so a stopped
benchmark resumes where it was: the CLI skips the images already in each folder's samples.csv and a finished
folder costs only its config check; ``--finished-only`` records what is finished without starting anything. Two
processes may share the workdir with different ``--experiments`` (one thread each: ``OMP_NUM_THREADS=1``) and
``--no-record``; a last call without it writes the whole table.

Usage: .venv/bin/python bench/solvers.py [--num-images 32] [--solvers latent_dps gml_dps psld resample]
       [--experiments toy_varblur toy_inpaint] [--adapters none flash] [--workdir outputs/bench/solvers]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from flash_vs_baseline import ROOT, run_method

COSTS = ("score_forwards", "backward_passes", "decoder_calls", "encoder_calls", "inner_iterations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--solvers", nargs="+", default=["latent_dps", "gml_dps", "psld", "resample"])
    parser.add_argument("--experiments", nargs="+", default=["toy_varblur", "toy_inpaint"])
    parser.add_argument("--adapters", nargs="+", default=["none", "flash"])
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every run, e.g. solver.eta=0.5")
    parser.add_argument("--workdir", type=Path, default=ROOT / "outputs" / "bench" / "solvers",
                        help="run folders, kept so that a stopped benchmark resumes")
    parser.add_argument("--no-record", action="store_true", help="run only; do not append to the results file")
    parser.add_argument("--finished-only", action="store_true",
                        help="start no run: record the points whose folder already holds every image, list the rest")
    parser.add_argument("--remark", default="", help="a note for the record's header, e.g. how the runs shared the CPU")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    header = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()} · {platform.machine()}, "
              f"{os.cpu_count()} CPUs, "
              + ("recorded from finished run folders (s/image as each run measured it)" if args.finished_only
                 else f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
              + (f" ({args.remark})" if args.remark else "") + " · "
              f"first {args.num_images} test images, batch {args.batch_size}"
              + (f" · {' '.join(args.extra)}" if args.extra else "") + "\n\n"
              "| experiment | solver | adapter | PSNR | SSIM | fd_toy | mean NFE | NFE ÷ baseline | ΔPSNR vs baseline "
              "| s/image | "
              + " | ".join(COSTS) + " |\n|" + "---|" * (10 + len(COSTS)) + "\n")
    results = ROOT / "bench" / "results" / "solvers.md"
    results.parent.mkdir(parents=True, exist_ok=True)
    lines, pending = [], []
    tag = "-".join([f"n{args.num_images}", *args.extra]).replace("/", "_").replace("=", "_")  # Hydra-safe
    for exp in args.experiments:
        for solver in args.solvers:
            runs = {}
            for adapter in args.adapters:
                overrides = [f"+experiment={exp}", f"solver={solver}", f"adapter={adapter}",
                             f"num_images={args.num_images}", f"batch_size={args.batch_size}", *args.extra]
                name = f"{exp}-{solver}-{adapter}-{tag}"
                r = finished(args.workdir / name, args.num_images) if args.finished_only else \
                    run_method(name, overrides, args.workdir)
                if r is None:
                    pending.append(name)
                    continue
                runs[adapter] = r
                base = runs.get("none")
                ratio = f"{base['nfe_mean'] / r['nfe_mean']:.1f}×" if base and r["nfe_mean"] > 0 else "–"
                delta = f"{r['psnr'] - base['psnr']:+.2f}" if base else "–"
                fd = "–" if r.get("fd_toy") is None else f"{r['fd_toy']:.2f}"  # the toy perceptual proxy (not FID)
                line = (f"| {exp} | {solver} | {adapter} | {r['psnr']:.2f} | {r['ssim']:.3f} | {fd} | "
                        f"{r['nfe_mean']:.1f} | {ratio} | {delta} | {r['seconds_per_image']:.3f} | "
                        + " | ".join(f"{r.get(c + '_mean', float('nan')):.1f}" for c in COSTS) + " |\n")
                lines.append(line)
                print(line, end="", flush=True)
    if pending:
        lines.append(f"\nNot finished yet (run again without --finished-only to resume): {', '.join(pending)}\n")
    print(header + "".join(lines))
    if not args.no_record:
        with open(results, "a") as f:
            f.write(header + "".join(lines))


def finished(folder: Path, num_images: int) -> dict | None:
    """The summary of a run folder that holds all ``num_images`` images; None for a missing or partial run."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except FileNotFoundError:
        return None
    return summary if summary["n_images"] >= num_images else None


if __name__ == "__main__":
    main()

"""Study: quality against a compute budget. Flash-budget (``adapter=flash_budget``: Flash's ordering, the run's mean
NFE fixed) against the fixed start (every image starts at one step) at the same mean NFE, on toy varying blur.

Runs the sweep files sweeps/toy_budget_flash.yaml and sweeps/toy_budget_fixed.yaml on the first ``--num-images`` toy
test crops (``dataset.split=test``; the sweeps' own default is validation), each point its own run folder, then
builds one figure with both curves (PSNR, SSIM, fd_toy against mean NFE) and a table from the folders' summary.json.
LPIPS/FID are reported where their weights are available (offline: unavailable). Appends the table with date, commit
and machine to bench/results/budget_study.md and writes bench/results/budget_study.png.

Usage: .venv/bin/python bench/budget_study.py [--num-images 64] [--workdir outputs/budget_study]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = {"flash_budget": "toy_budget_flash", "fixed": "toy_budget_fixed"}
METRICS = ("psnr", "ssim", "fd_toy", "lpips", "fid")


def run_sweep(sweep: str, num_images: int, workdir: Path) -> None:
    """One multirun of a sweep file on test images into ``workdir/<sweep>``."""
    cmd = [sys.executable, "-m", "flashdiff", "-m", f"+sweep={sweep}", "dataset.split=test",
           f"num_images={num_images}", f"hydra.sweep.dir={workdir / sweep}", "logger=disabled"]
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def points(folder: Path) -> list[dict]:
    """The summaries of a sweep's run folders, by mean NFE."""
    rows = [json.loads(p.read_text()) for p in folder.rglob("summary.json")]
    return sorted(rows, key=lambda s: s["nfe_mean"])


def figure(curves: dict[str, list[dict]], path: Path) -> None:
    """PSNR, SSIM and fd_toy against mean NFE, one line per adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in METRICS if any(s.get(m) is not None for c in curves.values() for s in c)]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.2), dpi=120)
    for ax, metric in zip(axes, shown):
        for name, summaries in curves.items():
            xs = [s["nfe_mean"] for s in summaries if s.get(metric) is not None]
            ax.plot(xs, [s[metric] for s in summaries if s.get(metric) is not None], "o-", label=name)
        ax.set_xscale("log")
        ticks = sorted({s["nfe_mean"] for c in curves.values() for s in c})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("mean NFE")
        ax.set_ylabel(metric + (" (lower is better)" if metric in ("fd_toy", "lpips", "fid") else ""))
    axes[0].legend(fontsize=8)
    fig.suptitle("Toy varying blur: quality at a compute budget", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def table(curves: dict[str, list[dict]]) -> str:
    """Markdown rows: adapter, planned/target budget, mean NFE, metrics, images."""
    fmt = lambda v, f: "unavailable" if v is None else format(v, f)  # noqa: E731
    lines = ["| adapter | budget | mean NFE | PSNR | SSIM | fd_toy | LPIPS | FID | images |", "|---" * 9 + "|"]
    for name, summaries in curves.items():
        for s in summaries:
            budget = s["config"]["adapter"].get("nfe_mean") or s["config"]["adapter"].get("t_start", -1) + 1
            lines.append(f"| {name} | {budget:g} | {s['nfe_mean']:.2f} | {s['psnr']:.2f} | {s['ssim']:.3f} | "
                         f"{fmt(s.get('fd_toy'), '.2f')} | {fmt(s.get('lpips'), '.4f')} | {fmt(s.get('fid'), '.2f')} | "
                         f"{s['n_images']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=ROOT / "outputs" / "budget_study")
    args = parser.parse_args()
    started = time.perf_counter()
    for sweep in SWEEPS.values():
        run_sweep(sweep, args.num_images, args.workdir)
    curves = {name: points(args.workdir / sweep) for name, sweep in SWEEPS.items()}
    results = ROOT / "bench" / "results"
    figure(curves, results / "budget_study.png")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    head = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()} · {platform.machine()}, "
            f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} · first "
            f"{args.num_images} toy test crops · {time.perf_counter() - started:.0f} s\n\n"
            f"Command: `.venv/bin/python bench/budget_study.py --num-images {args.num_images}` (figure: "
            "[budget_study.png](budget_study.png))\n\n")
    with open(results / "budget_study.md", "a") as f:
        f.write(head + table(curves) + "\n")
    print(head + table(curves))


if __name__ == "__main__":
    main()

"""Benchmark: the non-adaptive control of the paper's Fig. 7 — quality vs. mean reverse steps for fixed starts.

Runs ``adapter=fixed adapter.t_start=S`` for each S (every sample starts at S from the severity encoder's ẑ) and
Flash itself on the same toy test images, each as its own ``python -m flashdiff`` process, and stores every
available metric against mean NFE in bench/results/fixed_start_sweep.md (a table per run) plus
bench/results/fixed_start_sweep.png (quality vs. mean steps, Flash's point on the same axes). Metrics a run
reports as unavailable (e.g. LPIPS without its weights) are left out with the run's reason. On the toy world the
perceptual side is ``fd_toy`` (Fréchet distance in the bundled toy feature network's features; lower is better).

Usage: .venv/bin/python bench/fixed_start_sweep.py [--experiment toy_varblur] [--num-images 16]
       [--starts 10 25 50 100 200 400]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from flash_vs_baseline import ROOT, run_method

METRICS = ("psnr", "ssim", "lpips", "fid", "fd_toy")  # fd_toy: the toy perceptual proxy (toy features, not FID)


def plot(rows: list[dict], flash: dict, metrics: list[str], path: Path, title: str) -> None:
    """One panel per metric: the fixed starts as a line over mean NFE, Flash as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        ax.plot([r["nfe_mean"] for r in rows], [r[m] for r in rows], "o-", label="fixed start")
        ax.plot([flash["nfe_mean"]], [flash[m]], "*", markersize=14, color="C3", label="Flash")
        ax.set_xscale("log")
        ax.set_xlabel("mean reverse steps (NFE)")
        ax.set_ylabel(m.upper())
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="toy_varblur")
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--starts", type=int, nargs="+", default=[10, 25, 50, 100, 200, 400])
    args = parser.parse_args()
    common = [f"+experiment={args.experiment}", f"num_images={args.num_images}", f"batch_size={args.batch_size}"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        flash = run_method("flash", common, out)
        rows = [run_method(f"fixed_{s}", [*common, "adapter=fixed", f"adapter.t_start={s}"], out) for s in args.starts]
    metrics = [m for m in METRICS if flash.get(m) is not None and all(r.get(m) is not None for r in rows)]
    missing = {m: flash.get("unavailable", {}).get(m, "not computed") for m in METRICS if m not in metrics}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    title = (f"{time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()} · {platform.machine()}, "
             f"{os.cpu_count()} CPUs · {args.experiment}, first {args.num_images} test images")
    table = "| method | mean NFE | " + " | ".join(m.upper() for m in metrics) + " | s/image |\n"
    table += "|---|---|" + "---|" * len(metrics) + "---|\n"
    for r in [*rows, flash]:
        table += (f"| {r['name']} | {r['nfe_mean']:.1f} | " + " | ".join(f"{r[m]:.4g}" for m in metrics)
                  + f" | {r['seconds_per_image']:.3f} |\n")
    unavailable = "".join(f"- {m}: {why}\n" for m, why in missing.items())
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    text = f"\n## {title}\n\n{table}\nNot measured:\n{unavailable}"
    with open(results / "fixed_start_sweep.md", "a") as f:
        f.write(text)
    plot(rows, flash, metrics, results / "fixed_start_sweep.png", title)
    print(text)


if __name__ == "__main__":
    main()

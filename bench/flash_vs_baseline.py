"""Benchmark: Flash(Latent-DPS) against its baseline, AE and a fixed start on a fixed toy subset, in one run.

Each method runs as its own ``python -m flashdiff`` process (so its peak memory is its own, read from wait4);
quality, mean NFE and seconds per image come from the run's summary.json. Flash is also timed one image at a
time (as the authors' code runs) against batched. Results are appended, with date, commit and machine, to
bench/results/flash_vs_baseline.md.

Usage: .venv/bin/python bench/flash_vs_baseline.py [--experiment toy_varblur] [--num-images 16] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run_method(name: str, overrides: list[str], out: Path) -> dict:
    """One reconstruction run in a child process; its summary plus wall time and peak RSS."""
    cmd = [sys.executable, "-m", "flashdiff", *overrides, f"hydra.run.dir={out / name}", "logger=disabled"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{name} failed: {' '.join(cmd)}\n{stderr[-2000:]}")
    summary = json.loads((out / name / "summary.json").read_text())
    with open(out / name / "samples.csv", newline="") as f:
        samples = list(csv.DictReader(f))
    return summary | {"name": name, "wall_seconds": time.perf_counter() - started,
                      "peak_rss_mb": usage.ru_maxrss / 1024, "samples": samples}


def start_spread(samples: list[dict[str, str]]) -> str:
    """Spread of the start steps (t_start, empty = ẑ returned: 0) and their Spearman correlation with severity."""
    from flashdiff.metrics.ordering import spearman  # the project's own statistic

    t = torch.tensor([float(r["t_start"] or 0) for r in samples])
    sev = torch.tensor([float(r["severity"]) for r in samples])
    q = torch.quantile(t, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])).tolist()
    return (f"start step t_start over {len(samples)} images: min {q[0]:.0f}, quartiles {q[1]:.0f} / {q[2]:.0f} / "
            f"{q[3]:.0f}, max {q[4]:.0f}, std {t.std():.1f}; Spearman(t_start, severity) = {spearman(t, sev):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="toy_varblur")
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--fixed-start", type=int, default=None, help="adapter.t_start of the fixed control "
                        "(default: Flash's mean start, measured first)")
    args = parser.parse_args()
    common = [f"+experiment={args.experiment}", f"num_images={args.num_images}"]
    batched = [*common, f"batch_size={args.batch_size}"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows = [run_method("flash", batched, out)]
        mean_start = round(rows[0]["nfe_mean"])
        fixed_start = args.fixed_start if args.fixed_start is not None else mean_start
        rows.append(run_method("flash_one_at_a_time", [*common, "batch_size=1"], out))
        rows.append(run_method(f"fixed_start_{fixed_start}", [*batched, "adapter=fixed",
                                                              f"adapter.t_start={fixed_start}"], out))
        rows.append(run_method("ae", [*batched, "adapter=ae"], out))
        rows.append(run_method("baseline_N1000", [*batched, "adapter=none"], out))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    header = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()} · {platform.machine()}, "
              f"{os.cpu_count()} CPUs · {args.experiment}, first {args.num_images} test images, batch "
              f"{args.batch_size}\n\n| method | PSNR | SSIM | mean NFE | s/image | images/s | peak RSS (MB) "
              "| wall (s) |\n|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['name']} ({r['method']}) | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['nfe_mean']:.1f} | "
                   f"{r['seconds_per_image']:.3f} | {1 / r['seconds_per_image']:.2f} | {r['peak_rss_mb']:.0f} | "
                   f"{r['wall_seconds']:.0f} |\n" for r in rows) + f"\nFlash {start_spread(rows[0]['samples'])}.\n"
    results = ROOT / "bench" / "results" / "flash_vs_baseline.md"
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a") as f:
        f.write(header + body)
    print(header + body)


if __name__ == "__main__":
    main()

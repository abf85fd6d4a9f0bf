"""Benchmark: Latent-DPS from a fixed start on deepinv's super-resolution x2 (``operator=deepinv_sr2``), toy world.

Each adapter runs as its own ``python -m flashdiff`` process; PSNR, SSIM and mean NFE come from its summary.json.
The reference is the measurement's bicubic upsampling: the same seeded low-resolution ``y`` (the lift's top-left
pixel of each 2x2 block), ``F.interpolate(mode="bicubic")``, clipped to [0, 1], scored with flashdiff's PSNR/SSIM.
Results are appended, with date, commit and machine, to bench/results/deepinv_sr.md.

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/deepinv_sr.py [--num-images 8] [--start 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def run_method(name: str, overrides: list[str], out: Path) -> dict:
    """One reconstruction run in a child process; its summary and the command."""
    args = ["operator=deepinv_sr2", *overrides, f"hydra.run.dir={out / name}", "logger=disabled"]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flashdiff", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: python -m flashdiff {' '.join(args)}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / name / "summary.json").read_text())
    shown = " ".join(a for a in args if not a.startswith("hydra.run.dir"))
    return summary | {"name": name, "command": f"python -m flashdiff {shown}",
                      "wall_seconds": time.perf_counter() - started}


def interpolated(num_images: int, mode: str) -> dict:
    """PSNR / SSIM of the low-resolution measurement upsampled by ``mode`` (the runs' y: same seeds, seed 0)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import flashdiff.paths  # noqa: F401  (the ${flashdiff_root:} resolver)
    from flashdiff.metrics import psnr, ssim
    from flashdiff.reconstruction import measure_chunk

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", ["operator=deepinv_sr2"])
    dataset, op = instantiate(cfg.dataset), instantiate(cfg.operator)
    items = [dataset[i] for i in range(num_images)]
    m = measure_chunk(items, op, 0, torch.device("cpu"))
    x, y = m.x, m.y
    low = y[..., ::2, ::2]  # (B, 3, H/2, W/2): the lift repeats each pixel over its 2x2 block
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    x_hat = F.interpolate(low, size=x.shape[-2:], mode=mode, **kwargs).clamp(0, 1)
    return {"name": f"{mode} upsampling of y", "method": "no diffusion", "psnr": float(psnr(x_hat, x).mean()),
            "ssim": float(ssim(x_hat, x).mean()), "nfe_mean": 0.0, "seconds_per_image": float("nan"),
            "command": f"F.interpolate(y_low, mode={mode!r})", "wall_seconds": float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=8)
    parser.add_argument("--start", type=int, default=100, help="adapter.t_start of the fixed-start runs")
    args = parser.parse_args()
    common = [f"num_images={args.num_images}", f"adapter.t_start={args.start}"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows = [run_method("fixed_e0", ["adapter=fixed_e0", *common], out),
                run_method("fixed", ["adapter=fixed", *common], out),
                run_method("ae_e0", ["adapter=ae", "adapter.encoder=null", f"num_images={args.num_images}"], out)]
    rows += [interpolated(args.num_images, "bicubic"), interpolated(args.num_images, "nearest")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "conf"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip()
    header = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()}"
              f"{' (+ uncommitted changes in src/ or conf/)' if dirty else ''} · {platform.machine()}, "
              f"{os.cpu_count()} CPUs · toy test crops 32x32, first {args.num_images}, deepinv_sr2 "
              f"(bicubic x2, reflect, noise 0.05), solver latent_dps (DDPM 1000, eta 1)\n\n"
              "| method | PSNR | SSIM | mean NFE | s/image | command |\n|---|---|---|---|---|---|\n")
    seconds = lambda r: "—" if r["seconds_per_image"] != r["seconds_per_image"] else f"{r['seconds_per_image']:.2f}"  # noqa: E731
    body = "".join(f"| {r['name']} ({r['method']}) | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['nfe_mean']:.1f} | "
                   f"{seconds(r)} | `{r['command']}` |\n" for r in rows)
    results = ROOT / "bench" / "results" / "deepinv_sr.md"
    if not results.exists():
        results.write_text("# deepinv super-resolution x2 on the toy world (`bench/deepinv_sr.py`)\n")
    with open(results, "a") as f:
        f.write(header + body)
    print(header + body)


if __name__ == "__main__":
    main()

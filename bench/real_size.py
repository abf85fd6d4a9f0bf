"""Real-size cost: seconds per reverse step and peak memory of the paper's LDM on 256² images (random weights).

The models have the CelebA-HQ LDM's architecture (VQ-f4 + the 274 M-parameter UNet, 3×64×64 latents; configs in
src/flashdiff/convert/architectures) with random weights: shapes, memory and data flow are real, the weights are
not. Each measurement runs in its own child process (so its peak memory is its own) on a 61×61 Gaussian blur:

- ``encoder``: one severity-encoder forward (what Flash adds per image);
- ``latent_dps``: one Latent-DPS DDPM step (UNet forward, decoder, backward through both);
- ``resample_step``: one plain ReSample DDIM step (no gradient);
- ``resample_dc_iteration``: one Adam iteration of ReSample's hard data consistency (decoder forward + backward);
- ``latent_dps_checkpointed``: ``latent_dps`` with activation checkpointing of the UNet's blocks and the decoder
  (``memory.checkpoint_unet``, ``memory.checkpoint_decoder``): the same step, less activation memory.

Appends a table with date, commit and machine to bench/results/real_size.md, plus seconds per image projected
for the paper's NFE (FFHQ varying blur: Flash(Latent-DPS) 100.3, Flash(ReSample) 49.9; hard data consistency
every 10th step at up to 100 iterations, no early stop assumed).

Usage: .venv/bin/python bench/real_size.py [--batch-sizes 1 16] [--steps 5] [--methods ...]
Default: on CUDA batch 1 and 16, 5 steps after a warm-up; on CPU batch 1, 1 step, no warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("encoder", "latent_dps", "resample_step", "resample_dc_iteration")
EXTRA_METHODS = ("latent_dps_checkpointed",)  # memory.checkpoint_unet + memory.checkpoint_decoder
UNITS = {"encoder": "forward", "latent_dps": "step", "resample_step": "step", "resample_dc_iteration": "iteration",
         "latent_dps_checkpointed": "step"}


def workload(method: str, batch: int, steps: int, model_dir: str, device: torch.device):
    """A zero-argument callable running ``steps`` units of ``method`` on a batch of random 256² images."""
    from flashdiff.data.seeding import generators
    from flashdiff.diffusion import LatentDiffusion
    from flashdiff.engine import sample
    from flashdiff.operators import GaussianBlur
    from flashdiff.severity import SeverityEncoder
    from flashdiff.solvers.latent_dps import latent_dps
    from flashdiff.solvers.resample import hard_data_consistency, resample
    from flashdiff.types import COUNTERS

    model = LatentDiffusion.from_pretrained(model_dir, autoencoder_subfolder="vqvae").to(device)
    op = GaussianBlur(kernel_size=61, max_std=3.0).to(device)
    seeds = torch.arange(1, batch + 1)
    x = torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(0)).to(device)
    params = op.draw(seeds, tuple(x.shape))
    y = op.measure(x, params, seeds)
    z = torch.randn(batch, *model.latent_shape, generator=torch.Generator().manual_seed(1)).to(device)
    start = torch.full((batch,), steps, dtype=torch.int64)
    gens = generators(seeds.tolist(), 1)
    if method == "encoder":
        encoder = SeverityEncoder.from_latent_diffusion(model).requires_grad_(False).eval().to(device)
        return lambda: [encoder(y) for _ in range(steps)]
    if method == "latent_dps_checkpointed":
        model.configure(checkpoint_unet=True, checkpoint_decoder=True)
    if method in ("latent_dps", "latent_dps_checkpointed"):
        return lambda: sample(model, latent_dps(num_steps=1000, eta=1.0), z, start, gens, op=op, y=y, params=params)
    if method == "resample_step":  # max_iters=0: the last step's hard data consistency does nothing
        return lambda: sample(model, resample(num_steps=500, delta=1.0, max_iters=0), z, start, gens, op=op, y=y,
                              params=params)
    counts = {name: torch.zeros(batch, dtype=torch.int64, device=device) for name in COUNTERS}
    return lambda: hard_data_consistency(model, op, y, params, z, counts, tau=0.0, max_iters=steps)


def child(method: str, batch: int, steps: int, model_dir: str, device_name: str, warmup: bool) -> dict:
    """Time ``steps`` units of ``method``; seconds per unit and this process's peak memory."""
    device = torch.device(device_name)
    run = workload(method, batch, steps, model_dir, device)
    with torch.no_grad():
        if warmup:
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"method": method, "batch": batch, "steps": steps, "seconds": seconds, "peak_gib": peak / 2**30}


def run_child(method: str, batch: int, args: argparse.Namespace, model_dir: str, device: str) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(batch), "--model-dir", model_dir, "--device", device,
           "--steps", str(args.steps), *(["--warmup"] if args.warmup else [])]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{method} batch {batch} failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{method:>22} batch {batch:>2}: {row['seconds']:.3f} s/{UNITS[method]}, peak {row['peak_gib']:.2f} GiB",
          flush=True)
    return row


def projections(rows: list[dict], batch: int) -> dict[str, float] | None:
    """Seconds per image of whole runs at the paper's NFE, from the per-unit costs measured at ``batch``."""
    cost = {r["method"]: r["seconds"] / batch for r in rows if r["batch"] == batch}
    if not set(METHODS) <= cost.keys():
        return None
    enc, ldps, step, it = (cost[m] for m in METHODS)
    return {"Latent-DPS (1000 steps)": 1000 * ldps, "Flash(Latent-DPS) (100.3 steps)": enc + 100.3 * ldps,
            "ReSample (500 steps, 50 × 100 DC iterations)": 500 * step + 50 * 100 * it,
            "Flash(ReSample) (49.9 steps, 5 × 100 DC iterations)": enc + 49.9 * step + 5 * 100 * it}


def append_results(rows: list[dict], args: argparse.Namespace, device: str, seconds: float) -> Path:
    """Append the measurements (and projections where all four were measured) to bench/results/real_size.md."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    name = (torch.cuda.get_device_name(0) if device == "cuda" else
            f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch thread(s)")
    memory = "peak GPU memory allocated" if device == "cuda" else "peak RSS of the process"
    text = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()}{' + changes' if dirty else ''} · "
            f"{name} · torch "
            f"{torch.__version__} · {args.steps} unit(s) timed{' after a warm-up' if args.warmup else ''} · "
            f"{seconds:.0f} s in all\n\n| method | batch | s per unit | unit | s per unit per image | "
            f"{memory} (GiB) |\n|---|---|---|---|---|---|\n")
    for r in rows:
        text += (f"| {r['method']} | {r['batch']} | {r['seconds']:.3f} | {UNITS[r['method']]} | "
                 f"{r['seconds'] / r['batch']:.3f} | {r['peak_gib']:.2f} |\n")
    projected = {b: projections(rows, b) for b in sorted({r["batch"] for r in rows})}
    projected = {b: p for b, p in projected.items() if p}
    if projected:
        names = list(next(iter(projected.values())))
        text += ("\nProjected seconds per image (random weights: no early stop of ReSample's optimiser):\n\n"
                 f"| batch | {' | '.join(names)} |\n|---|{'---|' * len(names)}\n")
        text += "".join(f"| {b} | " + " | ".join(f"{s:.1f}" for s in p.values()) + " |\n" for b, p in projected.items())
    results = ROOT / "bench" / "results" / "real_size.md"
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a") as f:
        f.write(text)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cuda or cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default: 1 16 on CUDA, 1 on CPU")
    parser.add_argument("--steps", type=int, help="units timed per measurement (default: 5 on CUDA, 1 on CPU)")
    parser.add_argument("--methods", nargs="+", choices=METHODS + EXTRA_METHODS, default=list(METHODS))
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=None,
                        help="run each workload once before timing (default: on CUDA only)")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    args.steps = args.steps or (5 if device == "cuda" else 1)
    args.warmup = device == "cuda" if args.warmup is None else args.warmup
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.steps, args.model_dir, device, args.warmup)))
        return
    from flashdiff.convert.architectures import random_latent_diffusion

    started = time.perf_counter()
    batch_sizes = args.batch_sizes or ([1, 16] if device == "cuda" else [1])
    with tempfile.TemporaryDirectory() as tmp:
        random_latent_diffusion().save_pretrained(tmp, autoencoder_subfolder="vqvae")  # the children load it
        rows = [run_child(m, b, args, tmp, device) for b in batch_sizes for m in args.methods]
    print(f"appended to {append_results(rows, args, device, time.perf_counter() - started)}")


if __name__ == "__main__":
    main()

"""The GPU benchmark: Flash(Latent-DPS) sampling at the paper's real size, with random weights (no downloads).

Real size: the CelebA-HQ LDM's architecture (VQ-f4 + the 274 M-parameter UNet, 3×64×64 latents, 256² images,
src/flashdiff/convert/architectures), a 61×61 Gaussian blur, Latent-DPS on the 1000-step DDPM grid. Starts are drawn
from a fixed distribution standing in for the paper's FFHQ varying-blur starts (Table 1: Flash(Latent-DPS) runs
100.3 steps on average): ``nfe = clip(round(LogNormal(4.425, 0.6)), 10, 400)`` with ``Generator(0)``, mean ≈ 100
(the spread is this benchmark's assumption; App. B / Fig. 13 show starts from ~10 to ~400). The start latents are
N(0, I) draws (random weights: costs, not quality).

Tables, in this order until ``--budget`` seconds are spent (what is left is listed as not run):
1. one batched Latent-DPS step (UNet forward, decoder, backward through both) at batch 1 / 16 / 32, fp32 vs bf16,
   without and with activation checkpointing (``memory.checkpoint_unet`` + ``checkpoint_decoder``): s/step,
   s/step per image, peak memory;
2. whole runs through ``flashdiff.reconstruct`` (measurement, engine, decoding) at batch 16 and 32, static vs
   continuous batching: s/image, images/s, occupancy, batched steps, peak memory;
3. what Flash adds per image at 256² (one severity-encoder forward) and one iteration of ReSample's hard data
   consistency (decoder forward + backward), at batch 16.
Without CUDA it runs the same tables as a ~2-minute CPU smoke test of a scaled-down architecture (32² images, 3 %
of the steps, whole runs in fp32), so the script cannot rot; its numbers say nothing about a GPU. Appends a
Markdown section with the device, driver, torch and commit to bench/results/gpu.md (CUDA) or gpu_smoke.md (CPU).

Usage: bash bench/gpu.sh   (or .venv/bin/python bench/gpu.py [--smoke] [--budget 420] [--out FILE])
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@dataclass(frozen=True)
class Size:
    """One benchmark size: the architecture, image side, blur kernel, batch sizes and how starts are scaled."""

    name: str
    image: int
    kernel: int
    step_batches: tuple[int, ...]
    run_batches: tuple[int, ...]
    images_per_slot: int  # images per run = batch × this
    nfe_scale: float  # multiplies the drawn starts (1 at real size)
    timed_steps: int
    run_precision: str  # of the whole runs (bf16 on GPUs; fp32 on CPUs, whose bf16 autocast is slower, not faster)


REAL = Size("real", 256, 61, (1, 16, 32), (16, 32), 2, 1.0, 3, "bf16")
SMOKE = Size("smoke", 32, 9, (1, 2), (4,), 2, 0.03, 1, "fp32")


def build_model(size: Size, device: torch.device):
    """The real-size LDM with random weights, or its scaled-down smoke twin (same layout, fewer channels)."""
    from diffusers import UNet2DModel, VQModel

    from flashdiff.convert.architectures import architecture, random_latent_diffusion
    from flashdiff.diffusion import LatentDiffusion

    if size.name == "real":
        return random_latent_diffusion().to(device)
    torch.manual_seed(0)
    vq = VQModel.from_config(architecture("vq_f4") | {"block_out_channels": [16, 32, 64], "norm_num_groups": 8,
                                                      "sample_size": size.image, "num_vq_embeddings": 256})
    unet = UNet2DModel.from_config(architecture("ldm_unet_celebahq256") | {
        "block_out_channels": [16, 32, 48, 64], "norm_num_groups": 8, "attention_head_dim": 8,
        "sample_size": size.image // 4})
    return LatentDiffusion(vq, unet, scale_factor=1.0).requires_grad_(False).eval().to(device)


def draw_nfe(n: int, scale: float) -> torch.Tensor:
    """The documented start distribution: clip(round(LogNormal(4.425, 0.6)), 10, 400), scaled; (n,) int64 >= 1."""
    g = torch.Generator().manual_seed(0)
    nfe = torch.exp(4.425 + 0.6 * torch.randn(n, generator=g)).round().clamp(10, 400)
    return (nfe * scale).round().clamp_min(1).to(torch.int64)


class PresetStarts(torch.nn.Module):
    """An adapter with starts fixed in advance (in data order): pure-noise latents and the drawn NFE."""

    def __init__(self, nfe: torch.Tensor) -> None:
        super().__init__()
        self.nfe, self.used = nfe, 0

    def forward(self, model, y, grid, generators):
        from flashdiff.diffusion.sampling import randn_rows
        from flashdiff.types import Start

        nfe = self.nfe[self.used:self.used + y.shape[0]]
        self.used += y.shape[0]
        z = randn_rows(generators, model.latent_shape, y)
        return Start(z, nfe, [int(grid[grid.numel() - int(k)]) for k in nfe])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    from flashdiff.precision import peak_memory

    return float(peak_memory(device)["peak_memory_gib"])


def measured(problem: dict, batch: int, device: torch.device) -> tuple[torch.Tensor, dict, list]:
    """A batch of random images blurred and noised, seeded per image: (y, params, generators)."""
    from flashdiff.data.seeding import generators

    seeds = torch.arange(1, batch + 1)
    x = torch.rand(batch, 3, problem["image"], problem["image"], generator=torch.Generator().manual_seed(0))
    x = x.to(device)
    params = {k: v.to(device) for k, v in problem["op"].draw(seeds, tuple(x.shape)).items()}  # drawn on the CPU
    return problem["op"].measure(x, params, seeds), params, generators(seeds.tolist(), 7)


def step_row(problem: dict, batch: int, precision: str, checkpointing: bool, device: torch.device,
             steps: int) -> dict[str, Any]:
    """Seconds and peak memory of one batched Latent-DPS step (all rows at step 500, the DDPM grid)."""
    from flashdiff.diffusion.sampling import randn_rows
    from flashdiff.precision import autocast
    from flashdiff.types import COUNTERS, StepBatch

    model = problem["model"]
    model.configure(checkpoint_decoder=checkpointing, checkpoint_unet=checkpointing)
    y, params, gens = measured(problem, batch, device)
    z = randn_rows(gens, model.latent_shape, y)
    i = torch.full((batch,), 500, dtype=torch.int64, device=device)

    def one_step() -> None:
        counts = {name: torch.zeros(batch, dtype=torch.int64) for name in COUNTERS}  # host tallies
        step = StepBatch(model=model, op=problem["op"], z=z, i=i, i_prev=i - 1, noise=torch.randn_like(z), y=y,
                         params=params, generators=gens, counts=counts, i_host=i.cpu())
        with torch.no_grad(), autocast(device, precision):
            problem["solver"].step(step)

    reset_peak(device)
    one_step()  # warm-up (allocator, cuDNN autotuning)
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        one_step()
    sync(device)
    seconds = (time.perf_counter() - started) / steps
    return {"batch": batch, "precision": precision, "checkpointing": checkpointing, "s_per_step": seconds,
            "s_per_step_per_image": seconds / batch, "peak_gib": peak_gib(device)}


def run_row(problem: dict, batch: int, batching: str, precision: str, device: torch.device,
            size: Size) -> dict[str, Any]:
    """A whole run of ``batch × images_per_slot`` images through ``flashdiff.reconstruct`` with preset starts."""
    from flashdiff.engine import EngineStats
    from flashdiff.reconstruction import reconstruct

    model = problem["model"]
    model.configure(checkpoint_decoder=True, checkpoint_unet=True)
    n = batch * size.images_per_slot
    nfe = draw_nfe(n, size.nfe_scale)
    items = [{"x": torch.rand(3, size.image, size.image, generator=torch.Generator().manual_seed(k)), "index": k,
              "id": f"img{k}", "seed": k} for k in range(n)]
    stats = EngineStats(batch)
    reset_peak(device)
    sync(device)
    started = time.perf_counter()
    results = list(reconstruct(items, problem["op"], model, problem["solver"], PresetStarts(nfe), batch_size=batch,
                               device=device, batching=batching, precision=precision, stats=stats))
    sync(device)
    seconds = time.perf_counter() - started
    assert sum(r.nfe for r in results) == int(nfe.sum())
    return {"batch": batch, "batching": batching, "precision": precision, "images": n,
            "mean_nfe": float(nfe.float().mean()), "s_per_image": seconds / n, "images_per_s": n / seconds,
            "occupancy": stats.occupancy, "batched_steps": stats.batched_steps, "peak_gib": peak_gib(device)}


def extra_rows(problem: dict, batch: int, device: torch.device) -> list[dict[str, Any]]:
    """The severity encoder's forward and one ReSample hard-data-consistency iteration, per image, at ``batch``."""
    from flashdiff.severity import SeverityEncoder
    from flashdiff.solvers.resample import hard_data_consistency
    from flashdiff.types import COUNTERS

    model = problem["model"]
    model.configure(checkpoint_decoder=False, checkpoint_unet=False)
    y, params, _ = measured(problem, batch, device)
    encoder = SeverityEncoder.from_latent_diffusion(model).requires_grad_(False).eval().to(device)
    z = torch.randn(batch, *model.latent_shape, device=device)
    counts = {name: torch.zeros(batch, dtype=torch.int64, device=device) for name in COUNTERS}
    rows = []
    for name, work in (("severity encoder forward", lambda: encoder(y)),
                       ("ReSample data-consistency iteration",
                        lambda: hard_data_consistency(model, problem["op"], y, params, z, counts, tau=0.0,
                                                      max_iters=1))):
        reset_peak(device)
        with torch.no_grad():
            work()
            sync(device)
            started = time.perf_counter()
            work()
            sync(device)
        rows.append({"what": name, "batch": batch, "s_per_image": (time.perf_counter() - started) / batch,
                     "peak_gib": peak_gib(device)})
    return rows


def attempt(device: torch.device, fn, *args) -> dict[str, Any] | None:
    """``fn(*args)``, or None where the GPU runs out of memory (recorded as OOM)."""
    try:
        return fn(*args)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def markdown(device: torch.device, size: Size, steps: list, runs: list, extras: list, skipped: list,
             seconds: float) -> str:
    """The record's section: header with device, driver, torch, commit; the three tables; what was skipped."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True, cwd=ROOT)
    if device.type == "cuda":
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        what = f"{torch.cuda.get_device_name(device)}, driver {smi.stdout.strip() or '?'}, CUDA {torch.version.cuda}"
    else:
        what = f"CPU smoke test ({platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads)"
    fmt = lambda r, k, f: "OOM" if r.get(k) is None else format(r[k], f)  # noqa: E731
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M')} · {what} · torch {torch.__version__} · commit "
             f"{commit.stdout.strip()}{' + changes' if dirty.stdout.strip() else ''} · {size.name} size · "
             f"{seconds:.0f} s\n", "Command: `bash bench/gpu.sh`\n",
             "| batch | precision | checkpointing | s/step | s/step per image | peak memory (GiB) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['precision']} | {'on' if r['checkpointing'] else 'off'} | "
              f"{fmt(r, 's_per_step', '.3f')} | {fmt(r, 's_per_step_per_image', '.4f')} | {fmt(r, 'peak_gib', '.2f')} |"
              for r in steps]
    lines += ["", "| batch | batching | precision | images | mean NFE | s/image | images/s | occupancy | "
              "batched steps | peak memory (GiB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['batching']} | {r['precision']} | {r.get('images', '')} | "
              f"{fmt(r, 'mean_nfe', '.1f')} | {fmt(r, 's_per_image', '.3f')} | {fmt(r, 'images_per_s', '.2f')} | "
              f"{fmt(r, 'occupancy', '.3f')} | {r.get('batched_steps', 'OOM')} | {fmt(r, 'peak_gib', '.2f')} |"
              for r in runs]
    lines += ["", "| per image | batch | seconds | peak memory (GiB) |", "|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['batch']} | {fmt(r, 's_per_image', '.4f')} | {fmt(r, 'peak_gib', '.2f')} |"
              for r in extras]
    if skipped:
        lines.append(f"\nNot run within the time budget: {'; '.join(skipped)}.")
    return "\n".join(lines) + "\n"


def plan(size: Size) -> list[tuple[str, tuple]]:
    """The measurements in priority order (the budget cuts from the end)."""
    steps = [("step", (b, p, c)) for b in size.step_batches[:2] for p in ("fp32", "bf16") for c in (False, True)]
    steps += [("step", (b, "bf16", c)) for b in size.step_batches[2:] for c in (False, True)]
    p = size.run_precision
    runs = [("run", (size.run_batches[0], m, p)) for m in ("static", "continuous")]
    runs += [("extra", (size.run_batches[0],))]
    runs += [("run", (b, m, p)) for b in size.run_batches[1:] for m in ("static", "continuous")]
    runs += [("run", (size.run_batches[0], "continuous", "fp32" if p == "bf16" else "bf16"))]
    return steps + runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the CPU smoke size even where CUDA is present")
    parser.add_argument("--budget", type=float, help="seconds after which the rest is skipped (420 on CUDA, 90 on CPU)")
    parser.add_argument("--out", help="default: bench/results/gpu.md (CUDA) or gpu_smoke.md (CPU)")
    args = parser.parse_args()
    from flashdiff.operators import GaussianBlur
    from flashdiff.precision import use_tf32
    from flashdiff.solvers.latent_dps import latent_dps

    cuda = torch.cuda.is_available() and not args.smoke
    device, size = (torch.device("cuda"), REAL) if cuda else (torch.device("cpu"), SMOKE)
    if not cuda:
        torch.set_num_threads(1)  # small tensors: one thread is as fast, and robust to a busy machine
    use_tf32(device)
    budget = args.budget if args.budget is not None else (420.0 if cuda else 90.0)
    started = time.perf_counter()
    problem = {"model": build_model(size, device), "image": size.image, "solver": latent_dps(num_steps=1000, eta=1.0),
               "op": GaussianBlur(kernel_size=size.kernel, max_std=3.0).to(device)}
    steps, runs, extras, skipped = [], [], [], []
    for kind, what in plan(size):
        if time.perf_counter() - started > budget:
            skipped.append(f"{kind} {what}")
            continue
        if kind == "step":
            row = attempt(device, step_row, problem, *what, device, size.timed_steps)
            steps.append(row or dict(zip(("batch", "precision", "checkpointing"), what)))
        elif kind == "run":
            row = attempt(device, run_row, problem, *what, device, size)
            runs.append(row or dict(zip(("batch", "batching", "precision"), what)))
        else:
            extras += attempt(device, extra_rows, problem, what[0], device) or []
        print(f"{kind} {what}: done at {time.perf_counter() - started:.0f} s", flush=True)
    text = markdown(device, size, steps, runs, extras, skipped, time.perf_counter() - started)
    out = Path(args.out or ROOT / "bench" / "results" / ("gpu.md" if cuda else "gpu_smoke.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(text)
    print(text)
    print(f"appended to {out}")


if __name__ == "__main__":
    main()

"""Benchmark: how well can blur severity be read from a toy measurement at all? (the ceiling of issue 3's bar)

The severity encoder's bar is a Spearman correlation of σ̂² with the blur severity across validation crops and an
ordering accuracy (OA) over 10 severities per crop. This script measures the same two statistics, with the same
seeded draws as ``validate_severity``, for estimators that need no severity encoder:

- ``sharpness``: minus the noise-corrected horizontal gradient energy of y over y's variance (hand-made, no training);
- ``E0 error variance``: the true latent error variance of the untrained encoder, ``var(E0(y) - E0(x))`` — it
  needs the clean image, so it is the ceiling σ̂² would approximate without fine-tuning;
- ``bundled encoder σ̂²`` and its true error variance (models/toy_severity_blur), for comparison;
- ``regressor``: a small CNN (two 5×5 convs, log-energy pooling, MLP) trained to regress the severity t directly
  from y on the training photos (``--steps`` Adam steps, batch 64) — a learned estimator with a target that has no
  content in it;
- ``σ̄² regressor``: the same CNN with a softplus output trained with the severity encoder's variance term,
  ``(σ̂² - σ̄²)²``, where σ̄² is the untrained E0's error variance — what a σ head with pixel-level context could
  learn from the method's own target before fine-tuning moves it (the target keeps E0's ranking above).

Each for the native toy world and the photos downscaled 2× (``dataset.downscale=2``, more structure per crop).
Appends one table with date, commit and machine to bench/results/blur_identifiability.md.

Usage: .venv/bin/python bench/blur_identifiability.py [--downscales 1 2] [--steps 2000] [--max-images 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn
from tqdm import tqdm

from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion
from flashdiff.metrics.ordering import ordering_accuracy, spearman
from flashdiff.severity import SeverityEncoder
from flashdiff.severity.loss import error_variance
from flashdiff.train.severity import clean_batch, grid_scores

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
COLUMNS = ("sharpness", "E0 error variance", "bundled encoder σ̂²", "bundled encoder σ̄²", "regressor",
           "σ̄² regressor")


class LogEnergy(nn.Module):
    """(B, C, H, W) -> (B, C): log of each channel's mean energy (well conditioned for energy-like statistics)."""

    def forward(self, h: Tensor) -> Tensor:
        return h.pow(2).mean(dim=(2, 3)).add(1e-6).log()


def regressor() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 5, padding=2), nn.SiLU(), nn.Conv2d(32, 32, 5, padding=2), LogEnergy(),
                         nn.Linear(32, 64), nn.SiLU(), nn.Linear(64, 1))


def sharpness(y: Tensor, noise_std: float) -> Tensor:
    """Minus (horizontal gradient energy - its noise floor) / variance of y, (B,): larger = blurrier."""
    grad = (y[..., 1:] - y[..., :-1]).pow(2).mean(dim=(1, 2, 3)) - 2.0 * noise_std**2
    return -grad / y.var(dim=(2, 3)).mean(dim=1).clamp_min(1e-8)


def train_regressor(op: nn.Module, downscale: int, steps: int, ldm: LatentDiffusion | None = None,
                    e0: SeverityEncoder | None = None, batch_size: int = 64) -> nn.Module:
    """Adam on the training photos: regress t, or with ``ldm`` and ``e0`` fit softplus(net(y)) to E0's σ̄²."""
    torch.manual_seed(0)
    net = regressor()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = ToyImages("train", length=steps * batch_size, downscale=downscale)
    target = "severity" if e0 is None else "E0's error variance"
    for step in tqdm(range(steps), desc=f"regress {target} (downscale {downscale})", dynamic_ncols=True):
        x, seeds = clean_batch(data, step * batch_size, (step + 1) * batch_size, CPU)
        params = op.draw(seeds, tuple(x.shape), train=True)
        y = op.measure(x, params, seeds)
        if e0 is None:
            loss = (net(y).squeeze(1) - params["severity"]).pow(2).mean()
        else:
            with torch.no_grad():
                sigma2_bar = error_variance(e0(y)[0], ldm.encode(x))
            loss = (F.softplus(net(y).squeeze(1)) - sigma2_bar).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@torch.no_grad()
def statistics(op: nn.Module, dataset: ToyImages, max_images: int, ldm: LatentDiffusion, e0: SeverityEncoder,
               bundled: SeverityEncoder, net: nn.Module, net_e0: nn.Module) -> dict[str, tuple[float, float]]:
    """Spearman (one seeded training-range severity per image) and mean OA (10-severity grid) of every column."""
    n = min(max_images, len(dataset))
    x, seeds = clean_batch(dataset, 0, n, CPU)
    z0 = ldm.encode(x)

    def scores(y: Tensor) -> tuple[Tensor, ...]:
        z_hat, sigma2_hat = bundled(y)
        return (sharpness(y, op.noise_std), error_variance(e0(y)[0], z0), sigma2_hat, error_variance(z_hat, z0),
                net(y).squeeze(1), net_e0(y).squeeze(1))

    params = op.draw(seeds, tuple(x.shape), train=True)
    random_severity = scores(op.measure(x, params, seeds))
    grid = torch.linspace(*op.train_severity_range, 10)
    on_grid = grid_scores(scores, op, x, seeds, grid)
    return {c: (spearman(s, params["severity"]), ordering_accuracy(grid.expand(n, -1), g).mean().item())
            for c, s, g in zip(COLUMNS, random_severity, on_grid, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downscales", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps of the severity regressor")
    parser.add_argument("--max-images", type=int, default=100, help="crops per split, as validate_severity")
    args = parser.parse_args()
    op = hydra.utils.instantiate(OmegaConf.load(ROOT / "conf/operator/toy_blur_varying.yaml"))
    ldm = LatentDiffusion.from_pretrained(ROOT / "models/toy_ldm", unet_subfolder=None)
    e0 = SeverityEncoder.from_latent_diffusion(ldm).requires_grad_(False).eval()
    bundled = SeverityEncoder.from_pretrained(ROOT / "models/toy_severity_blur")
    rows = []
    for downscale in args.downscales:
        started = time.perf_counter()
        net = train_regressor(op, downscale, args.steps)
        net_e0 = train_regressor(op, downscale, args.steps, ldm, e0)
        for split in ("val", "test"):
            dataset = ToyImages(split, downscale=downscale)
            stats = statistics(op, dataset, args.max_images, ldm, e0, bundled, net, net_e0)
            rows.append((downscale, split, min(args.max_images, len(dataset)), stats))
        print(f"downscale {downscale}: {time.perf_counter() - started:.0f} s", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    header = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()} · {platform.machine()}, "
              f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads · regressor {args.steps} steps × 64\n\n"
              "Spearman / ordering accuracy of each estimator with the blur severity (bar for σ̂²: ≥ 0.6 / ≥ 0.9 "
              "on val at downscale 1).\n\n| downscale | split | crops | " + " | ".join(COLUMNS) + " |\n|"
              + "---|" * (3 + len(COLUMNS)) + "\n")
    body = "".join(f"| {d} | {split} | {n} | " + " | ".join(f"{s[c][0]:.2f} / {s[c][1]:.2f}" for c in COLUMNS)
                   + " |\n" for d, split, n, s in rows)
    results = ROOT / "bench" / "results" / "blur_identifiability.md"
    with open(results, "a") as f:
        f.write(header + body)
    print(header + body)


if __name__ == "__main__":
    main()

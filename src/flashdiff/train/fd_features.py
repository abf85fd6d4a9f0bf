"""Training of the toy feature network behind ``fd_toy`` (``python -m flashdiff.train train=fd_features``).

Objective: from a 32×32 crop (random position, flips), tell which train photo and which cell of a ``grid × grid``
partition of that photo it comes from (cross-entropy). Crops are sharp, so blur and noise move the features —
what a Fréchet distance should see. After training, the network is checked on held-out crops: the Fréchet
distance between clean crops and the same crops blurred / noised must grow with the degradation, and it is
compared with the untrained network's and with the split-half floor (two disjoint sets of clean crops).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from flashdiff.data.toy import MIN_CROP_STD, SPLIT_PHOTOS, load_photo
from flashdiff.metrics.fid import frechet
from flashdiff.metrics.toy_features import ToyFeatures
from flashdiff.operators import GaussianBlur, Identity
from flashdiff.train.commands import record_training
from flashdiff.train.loop import LoopSettings, TrainingJob, fit

log = logging.getLogger(__name__)

CHECK_BLUR_STDS = (0.75, 1.5, 3.0)  # the toy blur operator's range is [0, 3] px
CHECK_NOISES = (0.025, 0.05)  # σ_y of every toy task is 0.05


class PhotoRegionCrops(Dataset):
    """``{"x": (3, size, size) in [0, 1], "label"}``: a random crop of a train photo; label = photo * grid² + cell.

    Item ``k`` is drawn from ``k`` alone (photo uniformly, position uniformly, flips); flat crops are redrawn.
    ``downscale`` crops the photos shrunk that many times, as the toy world's ``dataset.downscale``.
    """

    def __init__(self, size: int = 32, length: int = 50_000, grid: int = 2, seed: int = 0, downscale: int = 1) -> None:
        self.size, self.length, self.grid, self.seed = int(size), int(length), int(grid), int(seed)
        self.downscale = int(downscale)
        self.photos = SPLIT_PHOTOS["train"]
        self.classes = len(self.photos) * self.grid**2

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, index])
        for _ in range(20):
            k = int(rng.integers(len(self.photos)))
            photo = load_photo(self.photos[k], self.downscale)
            h, w = photo.shape[:2]
            r, c = int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))
            crop = photo[r:r + self.size, c:c + self.size]
            if crop.std() >= MIN_CROP_STD:
                break
        cell_r = min(self.grid - 1, (r + self.size // 2) * self.grid // h)
        cell_c = min(self.grid - 1, (c + self.size // 2) * self.grid // w)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)  # (3, size, size)
        return {"x": x, "label": k * self.grid**2 + cell_r * self.grid + cell_c}


class RegionObjective(nn.Module):
    """``model(batch)`` -> cross-entropy of the photo-region class, and the batch accuracy."""

    def __init__(self, features: ToyFeatures) -> None:
        super().__init__()
        self.features = features

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Loss terms for ``batch["x"]`` (B, 3, H, W) and ``batch["label"]`` (B,)."""
        logits = self.features.logits(batch["x"])  # (B, classes)
        label = batch["label"].to(logits.device)
        return {"loss": F.cross_entropy(logits, label),
                "accuracy": (logits.argmax(1) == label).float().mean().detach()}


@torch.no_grad()
def region_accuracy(features: ToyFeatures, dataset: PhotoRegionCrops, n: int = 512) -> float:
    """Accuracy on ``n`` crops drawn from another seed (new positions of the same train photos)."""
    items = [dataset[k] for k in range(n)]
    x = torch.stack([it["x"] for it in items])
    label = torch.tensor([it["label"] for it in items])
    return (features.eval().logits(x).argmax(1) == label).float().mean().item()


@torch.no_grad()
def degradation_check(features: nn.Module, dataset: Dataset, max_images: int = 200) -> dict[str, float]:
    """Fréchet distances (toy features) between clean held-out crops and the same crops degraded.

    Keys: ``split_half`` (first vs second half of the clean crops: how far two different sets of this size are),
    ``noise_<σ>`` (noise only), ``blur_<std>`` (Gaussian blur, 19×19 kernel, no noise) and ``blur_3_noise_0.05``
    (a toy task's heaviest measurement), all seeded per image. Blur and noise should each raise the distance;
    together they partly cancel in a network that reads high-frequency energy.
    """
    n = min(max_images, len(dataset))
    items = [dataset[k] for k in range(n)]
    x = torch.stack([it["x"] for it in items])  # (N, 3, H, W)
    seeds = torch.tensor([int(it["seed"]) for it in items], dtype=torch.int64)
    features = features.eval()
    clean = features(x).double().numpy()
    out = {"split_half": frechet(clean[: n // 2], clean[n // 2:])}
    blur = lambda std, noise: GaussianBlur(19, max_std=std, severity_range=(1.0, 1.0), noise_std=noise)  # noqa: E731
    ops = {f"noise_{s:g}": Identity(s) for s in CHECK_NOISES} | {f"blur_{s:g}": blur(s, 0.0) for s in CHECK_BLUR_STDS}
    ops["blur_3_noise_0.05"] = blur(3.0, 0.05)
    for name, op in ops.items():
        y = op.measure(x, op.draw(seeds, tuple(x.shape)), seeds).clamp(0, 1)
        out[name] = frechet(clean, features(y).double().numpy())
    return out


def train_fd_features(job: TrainingJob, *, arch: dict[str, Any], loop: LoopSettings, image_size: int = 32,
                      grid: int = 2, max_val_images: int = 200, downscale: int = 1) -> dict[str, Any]:
    """Train ``ToyFeatures`` on photo-region classification (its own crops of the toy train photos, not
    ``job.train_set``), check it on ``job``'s val and test splits, save to ``job.output_dir``; returns the numbers."""
    started = time.perf_counter()
    train_set = PhotoRegionCrops(image_size, length=max(loop.steps * loop.batch_size, 1), grid=grid,
                                 downscale=downscale)
    torch.manual_seed(loop.seed)
    features = ToyFeatures(tuple(arch["widths"]), int(arch["feature_dim"]), classes=train_set.classes)
    result: dict[str, Any] = {"objective": f"photo x {grid}x{grid} region classification ({train_set.classes} "
                                           "classes) on random crops of the toy train photos, flips"
                                           + (f", photos downscaled {downscale}x" if downscale > 1 else "")}
    result |= {f"init_val_fd_{k}": v for k, v in degradation_check(features, job.val_set, max_val_images).items()}
    objective = fit(RegionObjective(features), train_set, loop, job.workdir, run=job.run, desc="fd_features")
    features = objective.features.eval()
    fresh = PhotoRegionCrops(image_size, length=512, grid=grid, seed=1, downscale=downscale)
    result["fresh_crop_accuracy"] = region_accuracy(features, fresh)
    result["chance_accuracy"] = 1.0 / train_set.classes
    result |= {f"val_fd_{k}": v for k, v in degradation_check(features, job.val_set, max_val_images).items()}
    if job.test_set is not None:
        result |= {f"test_fd_{k}": v for k, v in degradation_check(features, job.test_set,
                                                                      max_val_images).items()}
    result |= {"seconds": time.perf_counter() - started, "parameters": sum(p.numel() for p in features.parameters())}
    features.save_pretrained(job.output_dir, metadata={"purpose": "fd_toy feature network (toy perceptual proxy, not "
                                                              "Inception/FID)", "objective": result["objective"]})
    record_training(Path(job.output_dir), job.workdir, result, loop, dict(arch) | {"grid": grid})
    log.info("toy feature network saved to %s: %s", job.output_dir, json.dumps(result))
    if job.run is not None:
        job.run.summary.update({f"fd_features/{k}": v for k, v in result.items()})
    return result

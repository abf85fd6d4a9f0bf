"""Training of the toy autoencoder ``E0``/``D0`` (an AutoencoderKL; reconstruction MSE plus a small KL term)."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import Tensor, nn
from torch.utils.data import Dataset

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.metrics import psnr

log = logging.getLogger(__name__)


class AutoencoderObjective(nn.Module):
    """``model(batch)`` -> losses: MSE of ``D0(z)`` against x in [-1,1], ``z ~ q(z|x)``, plus ``kl_weight`` KL."""

    def __init__(self, autoencoder: AutoencoderKL, kl_weight: float = 1e-6) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.kl_weight = kl_weight

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        h = 2.0 * batch["x"] - 1.0  # (B, 3, H, W) in [-1, 1]
        posterior = self.autoencoder.encode(h).latent_dist
        rec = self.autoencoder.decode(posterior.sample()).sample
        mse = F.mse_loss(rec, h)
        kl = posterior.kl().mean() / h[0].numel()
        return {"loss": mse + self.kl_weight * kl, "mse": mse, "kl": kl}


@torch.no_grad()
def latent_scale(autoencoder: AutoencoderKL, dataset: Dataset, n: int = 1024, batch_size: int = 128) -> float:
    """``1 / std`` of the posterior-mean latents of the first ``n`` items: brings latents to unit variance."""
    zs = []
    for start in range(0, min(n, len(dataset)), batch_size):
        x = torch.stack([dataset[k]["x"] for k in range(start, min(start + batch_size, n, len(dataset)))])
        zs.append(autoencoder.encode(2.0 * x - 1.0).latent_dist.mode())
    return float(1.0 / torch.cat(zs).std())


@torch.no_grad()
def reconstruction_psnr(model: LatentDiffusion, dataset: Dataset, n: int | None = None,
                        batch_size: int = 128) -> Tensor:
    """PSNR of ``D0(E0(x))`` per item for the first ``n`` items of ``dataset``; (n,)."""
    n = len(dataset) if n is None else min(n, len(dataset))
    out = []
    for start in range(0, n, batch_size):
        x = torch.stack([dataset[k]["x"] for k in range(start, min(start + batch_size, n))])
        out.append(psnr(model.decode(model.encode(x)), x))
    return torch.cat(out)

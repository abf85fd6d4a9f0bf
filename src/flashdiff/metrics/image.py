"""Per-sample full-reference metrics on [0, 1] images (data range 1, outputs clipped as the paper)."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(x: Tensor, ref: Tensor) -> Tensor:
    """PSNR in dB of ``x`` (clipped to [0,1]) against ``ref``, data range 1; (B, C, H, W) -> (B,)."""
    mse = (x.clamp(0, 1) - ref).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


WINDOW = 11  # Gaussian window taps (sigma 1.5, kornia's fixed value): skimage's 2 int(3.5 sigma + 0.5) + 1


def ssim(x: Tensor, ref: Tensor) -> Tensor:
    """SSIM of ``x`` clipped to [0,1] against ``ref``, the paper's convention; (B, C, H, W) -> (B,).

    As torchmetrics / scikit-image (``structural_similarity(data_range=1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``): Gaussian window 11, sigma 1.5, data range 1, K1 = 0.01, K2 = 0.03, per
    channel, then the mean over channels and the valid region only (no padded border: H - 10 by W - 10 pixels).
    Needs H, W >= 11.
    """
    from kornia.metrics import ssim as ssim_map

    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW}x{WINDOW} pixels, got {tuple(x.shape[-2:])}")
    # eps 0: the reference formula without a stabiliser beyond C1, C2
    out = ssim_map(x.clamp(0, 1), ref, window_size=WINDOW, max_val=1.0, eps=0.0, padding="valid")
    return out.flatten(1).mean(1)  # (B, C, H - 10, W - 10) -> (B,)

"""Per-sample full-reference metrics on [0, 1] images (data range 1, outputs clipped as the paper)."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(x: Tensor, ref: Tensor) -> Tensor:
    """PSNR in dB of ``x`` (clipped to [0,1]) against ``ref``, data range 1; (B, C, H, W) -> (B,)."""
    mse = (x.clamp(0, 1) - ref).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim(x: Tensor, ref: Tensor) -> Tensor:
    """SSIM (Gaussian window 11, sigma 1.5, data range 1) of ``x`` clipped to [0,1] against ``ref``; (B,)."""
    from kornia.metrics import ssim as ssim_map

    return ssim_map(x.clamp(0, 1), ref, window_size=11, max_val=1.0).flatten(1).mean(1)

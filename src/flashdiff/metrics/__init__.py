"""Image-quality metrics per sample ``(B,)``."""

from flashdiff.metrics.image import psnr, ssim

__all__ = ["psnr", "ssim"]

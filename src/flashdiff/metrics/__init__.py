"""Image-quality metrics per sample ``(B,)`` (PSNR, SSIM, LPIPS, toy feature distance) and over folders (FID,
``fd_toy``); what a run computes is set by the ``metrics`` config section (``flashdiff.metrics.run``)."""

from flashdiff.metrics.image import psnr, ssim
from flashdiff.metrics.run import ImageMetrics, MetricSettings, run_metrics

__all__ = ["ImageMetrics", "MetricSettings", "psnr", "run_metrics", "ssim"]

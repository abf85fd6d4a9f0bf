"""Degradation operators ``y = A(x) + n`` on images in [0, 1] with per-sample seeded parameters."""

from flashdiff.operators.base import image_noise_seed
from flashdiff.operators.blur import GaussianBlur
from flashdiff.operators.inpaint import Inpainting
from flashdiff.operators.noise import Identity
from flashdiff.operators.nonlinear_blur import KernelWizard, NonlinearBlur

__all__ = ["GaussianBlur", "Identity", "Inpainting", "KernelWizard", "NonlinearBlur", "image_noise_seed"]

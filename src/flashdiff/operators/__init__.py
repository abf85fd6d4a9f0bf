"""Degradation operators ``y = A(x) + n`` on images in [0, 1] with per-sample seeded parameters."""

from flashdiff.operators.base import image_noise_seed
from flashdiff.operators.blur import GaussianBlur
from flashdiff.operators.inpaint import Inpainting
from flashdiff.operators.noise import Identity

__all__ = ["GaussianBlur", "Identity", "Inpainting", "image_noise_seed"]

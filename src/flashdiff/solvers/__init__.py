"""Reverse-diffusion solvers, one file per algorithm: ``solver(model, op, y, z_start, start, *, ...)``."""

from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.ddpm import ddpm

__all__ = ["ddim", "ddpm"]

"""Reverse-diffusion solvers, one file per algorithm: ``solver(model, op, y, params, z_start, start, *, ...)``."""

from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.ddpm import ddpm
from flashdiff.solvers.latent_dps import latent_dps

__all__ = ["ddim", "ddpm", "latent_dps"]

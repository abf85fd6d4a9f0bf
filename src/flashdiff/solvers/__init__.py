"""Reverse-diffusion solvers, one file per algorithm: ``solver(model, op, y, params, z_start, start, *, ...)``."""

from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.ddpm import ddpm
from flashdiff.solvers.gml_dps import gml_dps
from flashdiff.solvers.latent_dps import latent_dps
from flashdiff.solvers.psld import psld
from flashdiff.solvers.resample import resample

__all__ = ["ddim", "ddpm", "gml_dps", "latent_dps", "psld", "resample"]

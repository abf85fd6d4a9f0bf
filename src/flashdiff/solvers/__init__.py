"""Reverse-diffusion solvers, one file per algorithm: ``solver(model, op, y, params, z_start, start, *, ...)``.

``swinir`` is the supervised comparison behind the same call: it returns pixels (``SolverOutput.images``).
"""

from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.ddpm import ddpm
from flashdiff.solvers.dps import dps
from flashdiff.solvers.gml_dps import gml_dps
from flashdiff.solvers.latent_dps import latent_dps
from flashdiff.solvers.psld import psld
from flashdiff.solvers.resample import resample
from flashdiff.solvers.swinir import SwinIRRestorer, swinir

__all__ = ["SwinIRRestorer", "ddim", "ddpm", "dps", "gml_dps", "latent_dps", "psld", "resample", "swinir"]

"""Datasets whose items carry an index and an id that seeds every per-image random draw."""

from flashdiff.data.folder import ImageFolder
from flashdiff.data.seeding import image_seed, measurement_seed
from flashdiff.data.toy import ToyImages

__all__ = ["ImageFolder", "ToyImages", "image_seed", "measurement_seed"]

"""Datasets whose items carry an index and an id that seeds every per-image random draw."""

from flashdiff.data.benchmark import FFHQ256, CelebAHQ256, LSUNBedrooms256, split_ids
from flashdiff.data.folder import ImageFolder
from flashdiff.data.seeding import image_seed, measurement_seed
from flashdiff.data.toy import ToyImages

__all__ = ["FFHQ256", "CelebAHQ256", "ImageFolder", "LSUNBedrooms256", "ToyImages", "image_seed", "measurement_seed",
           "split_ids"]

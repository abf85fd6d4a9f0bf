"""Per-image seeds: every random draw of a test degradation is keyed on the image id, never on its batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def image_seed(image_id: str) -> int:
    """Seed of an image id, as the authors' ``str2int``: little-endian bytes of the id mod 2^32 - 1."""
    return int.from_bytes(image_id.encode(), "little") % (2**32 - 1)


def measurement_seed(image_seed_: int, run_seed: int) -> int:
    """Seed of one measurement: the image's seed mixed with the run's ``seed`` (run_seed 0 keeps the image seed)."""
    return (image_seed_ + run_seed * 0x9E3779B97F4A7C15) % (2**63 - 1)


def generators(seeds: Sequence[int] | Tensor, salt: int = 0) -> list[torch.Generator]:
    """One CPU generator per sample, seeded ``seed + salt``: a sample's draws never depend on its batch."""
    return [torch.Generator().manual_seed((int(s) + salt) % (2**63 - 1)) for s in seeds]

"""Start-time policies (``conf/adapter``): each maps a measurement to a start latent and a per-sample start.

An adapter is ``adapter(model, y, num_steps, generators) -> (z_start (B, C, h, w), start (B,))``, where ``start``
counts the reverse steps the sample runs on the solver's ``num_steps`` grid (0 = no diffusion, NFE 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.sampling import randn_rows


def none(model: LatentDiffusion, y: Tensor, num_steps: int,
         generators: Sequence[torch.Generator]) -> tuple[Tensor, Tensor]:
    """The baseline: every sample starts at the top of the grid from pure noise ``z_N ~ N(0, I)``."""
    b = y.shape[0]
    z = randn_rows(generators, torch.arange(b), model.latent_shape, y)
    return z, torch.full((b,), num_steps, dtype=torch.int64)


def ae(model: LatentDiffusion, y: Tensor, num_steps: int,
       generators: Sequence[torch.Generator]) -> tuple[Tensor, Tensor]:
    """No diffusion: decode the encoder's latent of the measurement, ``ẑ = E0(y)`` (NFE 0)."""
    with torch.no_grad():
        z = model.encode(y)
    return z, torch.zeros(y.shape[0], dtype=torch.int64)

"""Helpers shared by the solver tests: a measured toy problem and an analytic model that counts D0/E0 rows."""

import torch

from flashdiff.data.seeding import generators
from tests.conftest import AnalyticLDM


class CountingLDM(AnalyticLDM):
    """AnalyticLDM that also counts the rows passed through the decoder and the encoder."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.decode_rows = self.encode_rows = 0

    def decode(self, z):
        self.decode_rows += z.shape[0]
        return super().decode(z)

    def encode(self, x):
        self.encode_rows += x.shape[0]
        return super().encode(x)


def problem(op, b=4, first_seed=10):
    """Clean images (b, 3, 8, 8), their per-sample parameters and noisy measurements."""
    x = torch.stack([torch.rand(3, 8, 8, generator=g) for g in generators(range(first_seed, first_seed + b), 3)])
    seeds = torch.arange(b) + first_seed
    params = op.draw(seeds, tuple(x.shape))
    return x, params, op.measure(x, params, seeds)


def rows_of(params, b):
    """Sample b's parameters as a batch of one."""
    return {k: v[b:b + 1] for k, v in params.items()}

"""Experimental σ heads, OPTIONS and not the paper (whose head is ``flashdiff.severity.encoder.ConvHead``).

Pick one with ``train.head: {_target_: flashdiff.severity.heads.<Head>, _partial_: true, ...}``; each is saved with
its class and keyword arguments in the encoder's ``config.json``.

- ``ContextHead``: ``W (ẑ + g(ẑ)) + b`` with ``g`` a 3×3 conv context branch of ``width`` channels (zero-initialised);
- ``FeatureHead``: ``W ẑ + b + V h`` with ``h`` the encoder's last hidden features (zero-initialised ``V``): the
  severity read from ``y``'s features, not only from ``ẑ``;
- ``ContextFeatureHead``: both;
- ``EnergyHead``: replaces the 1×1 head by ``softplus(MLP(log energies))`` of 3×3-conv maps of those features, with
  ``early`` a second branch on the encoder's first, full-resolution feature map;
- ``StopGrad``: any head reading ``ẑ`` and the features detached, so only the head fits ``σ̄²``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from flashdiff.severity.encoder import ConvHead, HeadFactory, HeadInputs, SigmaHead, head_factory

log = logging.getLogger(__name__)


class ContextHead(ConvHead):
    """``σ̂² = mean (W (ẑ + g(ẑ)) + b)²``, ``g``: 3×3 conv C -> ``width``, SiLU, 1×1 conv -> C (last one zero: the
    head starts as the paper's exactly)."""

    def __init__(self, inputs: HeadInputs, *, width: int, **kwargs: Any) -> None:
        super().__init__(inputs, **kwargs)
        self.kwargs["width"] = int(width)
        self.context = nn.Sequential(nn.Conv2d(inputs.latent, int(width), 3, padding=1), nn.SiLU(),
                                     nn.Conv2d(int(width), inputs.latent, 1))
        nn.init.zeros_(self.context[-1].weight)
        nn.init.zeros_(self.context[-1].bias)

    def conv(self, z: Tensor, features: Tensor | None) -> Tensor:
        """``W (ẑ + g(ẑ)) + b``: (B, C, h, w) -> same."""
        return super().conv(z + self.context(z), features)


class FeatureHead(ConvHead):
    """``σ̂² = mean (W ẑ + b + V h)²`` with ``h`` (B, F, h, w) the input of the encoder's ``conv_out`` and ``V`` a
    1×1 conv F -> C, zero-initialised (training starts from the paper's head) and scaled by ``lr_mult`` as ``W``."""

    reads = ("features",)

    def __init__(self, inputs: HeadInputs, **kwargs: Any) -> None:
        super().__init__(inputs, **kwargs)
        self.feature_weight = nn.Parameter(torch.zeros(inputs.latent, inputs.features, 1, 1))

    def conv(self, z: Tensor, features: Tensor | None) -> Tensor:
        """``W ẑ + b + V h``: (B, C, h, w), (B, F, h, w) -> (B, C, h, w)."""
        return super().conv(z, features) + F.conv2d(features, self.lr_mult * self.feature_weight)

    def scaled(self) -> list[nn.Parameter]:
        """``W``, ``b`` and ``V``."""
        return [*super().scaled(), self.feature_weight]


class ContextFeatureHead(FeatureHead, ContextHead):
    """``σ̂² = mean (W (ẑ + g(ẑ)) + b + V h)²``: the context branch and the features together."""


class _Scaled(nn.Module):
    """Parametrization ``w = mult * raw``: Adam then moves ``w`` ``mult`` times faster than at the base lr."""

    def __init__(self, mult: float) -> None:
        super().__init__()
        self.mult = float(mult)

    def forward(self, raw: Tensor) -> Tensor:
        return self.mult * raw

    def right_inverse(self, w: Tensor) -> Tensor:
        return w / self.mult


class EnergyHead(SigmaHead):
    """``σ̂² = softplus(MLP(log mean_{h,w} (g(h))²))`` from the encoder features ``h`` (input of ``conv_out``).

    ``g`` is two 3×3 convs of ``width`` channels; the log-energy pooling reads how much structure each filter finds
    (blur removes it), which a mean of squares of a 1×1 conv of ``ẑ`` cannot turn into "more blur = larger σ̂²".
    With ``early`` a second such branch reads the encoder's first, full-resolution feature map and the MLP both
    sets of log energies. Every weight is stored as ``lr_mult * raw``. The last layer starts at zero, so before
    training ``σ̂²`` is the constant its bias gives (``start_at``).
    """

    def __init__(self, inputs: HeadInputs, *, width: int, early: bool = False, lr_mult: float = 1.0) -> None:
        if int(width) < 1 or not float(lr_mult) > 0.0:
            raise ValueError(f"train.head: EnergyHead needs width >= 1 and lr_mult > 0, got {width}, {lr_mult}")
        super().__init__(width=int(width), early=bool(early), lr_mult=float(lr_mult))
        self.reads = ("features", "early") if early else ("features",)
        nn.Conv2d(inputs.latent, inputs.latent, 1)  # drawn and dropped: the random stream of the 1x1 head's era
        self.filters = _filters(inputs.features, int(width))
        self.early = _filters(inputs.early, int(width)) if early else None
        n = 2 * int(width) if early else int(width)
        self.mlp = nn.Sequential(nn.Linear(n, 2 * int(width)), nn.SiLU(), nn.Linear(2 * int(width), 1))
        nn.init.zeros_(self.mlp[-1].weight)
        for module in list(self.modules()):
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                for name, _ in list(module.named_parameters(recurse=False)):
                    parametrize.register_parametrization(module, name, _Scaled(lr_mult))

    def forward(self, z: Tensor, features: Tensor | None = None, early: Tensor | None = None) -> Tensor:
        """``σ̂²`` (B,) from ``features`` (B, F, h, w) and, with ``early``, the (B, E, H, W) map; ``z`` unused."""
        energy = _log_energy(self.filters(features))  # (B, width)
        if self.early is not None:
            energy = torch.cat([energy, _log_energy(self.early(early))], dim=1)  # (B, 2 width)
        return F.softplus(self.mlp(energy).squeeze(1))  # (B,)

    @torch.no_grad()
    def start_at(self, v0: float, mean_sigma2: Callable[[], float]) -> float:
        """``σ̂² = v0`` for every input: zero last weight, bias = softplus⁻¹(v0); factor 1."""
        last = self.mlp[-1]
        last.weight = torch.zeros_like(last.weight)
        last.bias = torch.full_like(last.bias, float(torch.log(torch.expm1(torch.tensor(float(v0))))))
        log.info("energy σ head starts at σ̂² = %.4g", v0)
        return 1.0


def _filters(channels: int, width: int) -> nn.Sequential:
    """Two 3×3 convs ``channels -> width -> width`` with a SiLU between: the energy head's filter bank."""
    return nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1))


def _log_energy(maps: Tensor) -> Tensor:
    """``log(mean_{h,w} maps² + 1e-6)``: (B, K, h, w) -> (B, K)."""
    return maps.pow(2).mean(dim=(2, 3)).add(1e-6).log()


class StopGrad(SigmaHead):
    """``head`` reading ``ẑ`` and the encoder features detached: σ̂² trains the head only, never the encoder."""

    def __init__(self, inputs: HeadInputs, *, head: HeadFactory | dict[str, Any]) -> None:
        super().__init__()
        self.inner = head_factory(head)(inputs)
        self.reads = self.inner.reads

    def config(self) -> dict[str, Any]:
        """``{"_target_": ...StopGrad, "head": <the inner head's config>}``."""
        return super().config() | {"head": self.inner.config()}

    def forward(self, z: Tensor, features: Tensor | None = None, early: Tensor | None = None) -> Tensor:
        """The inner head on detached inputs: (B, C, h, w), … -> (B,)."""
        detached = (None if t is None else t.detach() for t in (z, features, early))
        return self.inner(*detached)

    def start_at(self, v0: float, mean_sigma2: Callable[[], float]) -> float:
        """The inner head's initialisation."""
        return self.inner.start_at(v0, mean_sigma2)

"""Per-image perceptual metrics: LPIPS (VGG backbone, as the paper) and the toy feature-space distance.

LPIPS needs torchvision's VGG16 weights; without them (no network, nothing cached) ``load_lpips`` returns the
reason instead of a model and the column stays empty. ``random_backbone=True`` builds LPIPS with a random
backbone for tests of the code path only: its values are meaningless and are never written as LPIPS.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import Tensor, nn

from flashdiff.metrics.weights import how_to_provide, vgg16_path, vgg16_url, weights_status

log = logging.getLogger(__name__)


class LPIPS(nn.Module):
    """LPIPS distance per sample of [0, 1] images (B, 3, H, W) -> (B,), lower is closer."""

    def __init__(self, net: nn.Module, random_backbone: bool) -> None:
        super().__init__()
        self.net = net
        self.random_backbone = random_backbone  # True only in tests: values meaningless, never reported

    @torch.no_grad()
    def forward(self, x: Tensor, ref: Tensor) -> Tensor:
        """LPIPS of ``x`` (clipped to [0, 1]) against ``ref``; (B, 3, H, W) -> (B,)."""
        return self.net(x.clamp(0, 1), ref, normalize=True).flatten()


def lpips_status(net: str = "vgg", download: str = "auto") -> str | None:
    """None when LPIPS-``net`` can be built with pretrained weights now; else the reason and how to fix it."""
    if net != "vgg":
        raise ValueError(f"metrics.lpips_net={net!r}: only vgg (the paper's backbone) is supported")
    path, url = vgg16_path(), vgg16_url()
    why = weights_status(path, url, download)
    return None if why is None else f"LPIPS-VGG backbone weights unavailable: {why}; {how_to_provide(path, url)}"


def load_lpips(net: str = "vgg", *, download: str = "auto", random_backbone: bool = False,
               device: torch.device | str = "cpu") -> tuple[LPIPS | None, str | None]:
    """``(metric, None)`` or ``(None, reason)``; ``random_backbone`` = tests only (values meaningless)."""
    import lpips

    if not random_backbone and (why := lpips_status(net, download)) is not None:
        return None, why
    try:
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained`` argument
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net=net, pnet_rand=random_backbone, verbose=False)
    except Exception as err:  # a corrupt or wrong cached file, a failed download: say so, do not crash the run
        return None, f"LPIPS-{net} could not be built ({type(err).__name__}: {err}); " \
                     f"{how_to_provide(vgg16_path(), vgg16_url())}"
    return LPIPS(model, random_backbone).to(device).eval(), None


@torch.no_grad()
def feature_mse(features: nn.Module, x: Tensor, ref: Tensor) -> Tensor:
    """Mean squared difference of ``features(x)`` and ``features(ref)`` per sample; (B, 3, H, W) -> (B,).

    With the toy feature network this is the per-image ``toy_feature_mse`` column: a toy perceptual proxy,
    not LPIPS.
    """
    return (features(x.clamp(0, 1)) - features(ref)).pow(2).mean(dim=1)

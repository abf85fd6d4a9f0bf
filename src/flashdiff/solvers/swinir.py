"""SwinIR (Liang et al., 2021), the paper's supervised comparison (App. A): ``x̂ = f(y)`` in pixels, no diffusion.

The network is spandrel's SwinIR, built for image restoration (no upsampler, upscale 1): the paper's 4 RSTB × 6 STL
with embedding 96. Weights are stored as safetensors beside a json config, as the severity encoder's.
``solver=swinir`` loads it with ``SwinIRRestorer.from_pretrained``: a ``flashdiff.types.Restorer`` (no grid, no adapter,
NFE 0), which the engine runs in chunks instead of a reverse process.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from spandrel.architectures.SwinIR import SwinIR
from torch import Tensor, nn

from flashdiff.weights import FolderSaved, read_folder

log = logging.getLogger(__name__)


PAPER_ARCH: dict[str, Any] = {
    "img_size": 32,  # the toy images; windows are shifted over this grid (other sizes work, masks built on the fly)
    "embed_dim": 96,  # App. A: embedding dimension 96
    "depths": [6, 6, 6, 6],  # App. A: 4 RSTB of 6 STL each
    "num_heads": [6, 6, 6, 6],
    "window_size": 8,  # divides the 32x32 toy images and 256x256 ones
    "mlp_ratio": 2.0,  # SwinIR's own restoration (denoising, JPEG) models; the paper does not say
    "resi_connection": "1conv",
    "drop_path_rate": 0.1,  # SwinIR's default stochastic depth
}
"""Architecture of the comparison model (paper App. A); ``arch`` entries given to ``SwinIRRestorer`` override these."""

RESTORATION = {"in_chans": 3, "upscale": 1, "upsampler": "", "img_range": 1.0}
"""Fixed: RGB in [0, 1] to RGB in [0, 1] at the same size (SwinIR's denoising/deblocking head)."""


class SwinIRRestorer(FolderSaved, nn.Module):
    """``y`` (B, 3, H, W) -> ``x̂`` (B, 3, H, W), both in [0, 1] (not clamped); spandrel's SwinIR inside."""

    def __init__(self, arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.arch = PAPER_ARCH | dict(arch or {})
        unknown = set(self.arch) & set(RESTORATION)
        if unknown:
            raise ValueError(f"SwinIR arch may not set {sorted(unknown)}: the restoration setting fixes them")
        with warnings.catch_warnings():  # spandrel's relative-position table calls torch.meshgrid without indexing
            warnings.filterwarnings("ignore", message="torch.meshgrid")
            self.net = SwinIR(**RESTORATION, **self.arch)

    def forward(self, y: Tensor) -> Tensor:
        """Restore ``y`` (B, 3, H, W) -> ``x̂`` (B, 3, H, W); H, W padded to the window size inside and cropped."""
        return self.net(y)

    @torch.no_grad()
    def restore(self, y: Tensor) -> Tensor:
        """The restorer contract (``flashdiff.types.Restorer``): ``x̂ = f(y)``, (B, 3, H, W) -> (B, 3, H, W)."""
        return self(y)

    def config(self) -> dict[str, Any]:
        """The json-serialisable description that ``from_pretrained`` rebuilds the network from."""
        return {"_class_name": type(self).__name__, "arch": self.arch}

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> SwinIRRestorer:
        """Rebuild from ``config.json`` and load the safetensors weights; eval mode, no gradients."""
        config, weights = read_folder(folder, f"solver.folder={folder}: no SwinIR there; train one with "
                                              "`python -m flashdiff.train train=swinir` (or `make toy-models`), or "
                                              "point solver.folder at one")
        model = cls(config["arch"])
        model.load_state_dict(weights)
        log.debug("loaded SwinIR (%d parameters) from %s", sum(p.numel() for p in model.parameters()), folder)
        return model.requires_grad_(False).eval()

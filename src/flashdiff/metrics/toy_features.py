"""The toy feature network behind ``fd_toy``: a small conv net the project trains itself on toy train crops.

It stands in for Inception (FID) in the toy world, where no pretrained weights exist: ``fd_toy`` is the Fréchet
distance between reconstructions and clean images in this network's feature space. It is NOT FID and its values
are not comparable with FID or with any published number. Trained by ``python -m flashdiff.train train=fd_features``
(``flashdiff.train.fd_features``); stored as ``config.json`` + ``model.safetensors``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from flashdiff.weights import FolderSaved, read_folder

log = logging.getLogger(__name__)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3x3 conv, GroupNorm, SiLU (stride 2 halves the resolution)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())


class ToyFeatures(FolderSaved, nn.Module):
    """``x`` (B, 3, H, W) in [0, 1] -> features (B, ``feature_dim``): conv stages, global average pool.

    ``classes`` > 0 adds the linear head used in training (which photo region a crop comes from); ``logits``.
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), feature_dim: int = 64, classes: int = 0) -> None:
        super().__init__()
        self.widths, self.feature_dim, self.classes = tuple(int(w) for w in widths), int(feature_dim), int(classes)
        layers, c = [], 3
        for w in self.widths:
            layers += [_block(c, w, 1), _block(w, w, 2)]
            c = w
        layers.append(nn.Conv2d(c, self.feature_dim, 1))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(self.feature_dim, self.classes) if self.classes else None

    def forward(self, x: Tensor) -> Tensor:
        """Features (B, feature_dim) of images in [0, 1] (B, 3, H, W): the pooled last stage."""
        return self.body(2.0 * x - 1.0).mean(dim=(2, 3))

    def logits(self, x: Tensor) -> Tensor:
        """Class scores (B, classes) of the training head."""
        if self.head is None:
            raise ValueError("this ToyFeatures has no training head (classes=0)")
        return self.head(self(x))

    def config(self) -> dict[str, Any]:
        """The json that rebuilds the architecture."""
        return {"_class_name": type(self).__name__, "widths": list(self.widths), "feature_dim": self.feature_dim,
                "classes": self.classes}

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> ToyFeatures:
        """Load a folder written by ``save_pretrained`` (eval mode, no gradients)."""
        config, weights = read_folder(folder, "no toy feature network for fd_toy: set metrics.fd_toy=<folder> or "
                                              "train one with `python -m flashdiff.train train=fd_features`")
        model = cls(tuple(config["widths"]), config["feature_dim"], config["classes"])
        model.load_state_dict(weights)
        log.debug("loaded toy feature network (%d-d features) from %s", model.feature_dim, folder)
        return model.requires_grad_(False).eval()

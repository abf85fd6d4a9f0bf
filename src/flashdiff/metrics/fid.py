"""Set-level metrics over image folders: FID (clean-fid, Inception) and ``fd_toy`` (the toy feature network).

Both are the Fréchet distance ``||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^1/2)`` between Gaussians fitted to the
features of two folders (clean-fid's ``frechet_distance``). FID needs clean-fid's Inception file; ``fd_toy``
runs offline on the project's own network and is named apart because it is not FID.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flashdiff.metrics.weights import how_to_provide, inception_path, inception_url, weights_status

log = logging.getLogger(__name__)


def fid_status(download: str = "auto") -> str | None:
    """None when clean-fid's Inception network can be used now; else the reason and how to provide it."""
    path, url = inception_path(), inception_url()
    why = weights_status(path, url, download)
    return None if why is None else f"FID Inception weights unavailable: {why}; {how_to_provide(path, url)}"


def _count(folder: Path) -> int:
    """Number of PNG images in ``folder``."""
    return len(list(Path(folder).glob("*.png")))


def _check_folders(a: Path, b: Path) -> str | None:
    """Why a Fréchet distance cannot be computed between the folders (None when it can)."""
    na, nb = _count(a), _count(b)
    if na < 2 or nb < 2:
        return f"needs at least 2 images per folder, found {na} in {a} and {nb} in {b}"
    return None


def fid(dir_a: str | Path, dir_b: str | Path, device: torch.device | str = "cpu") -> float:
    """FID (clean-fid ``clean`` mode: images resized to 299² inside clean-fid) between two folders of PNGs."""
    from cleanfid import fid as cleanfid

    if (why := _check_folders(Path(dir_a), Path(dir_b))) is not None:
        raise ValueError(f"FID {why}")
    return float(cleanfid.compute_fid(str(dir_a), str(dir_b), mode="clean", device=torch.device(device),
                                      num_workers=0, verbose=False, use_dataparallel=False))


def _native(img: np.ndarray) -> np.ndarray:
    """clean-fid resize hook: keep the image at its own size (the toy network is fully convolutional)."""
    return img


def folder_features(folder: str | Path, features: nn.Module, device: torch.device | str = "cpu",
                    batch_size: int = 64) -> np.ndarray:
    """Features (N, d) of every PNG in ``folder`` (sorted by name) through ``features`` (images in [0, 1])."""
    from cleanfid import fid as cleanfid

    device = torch.device(device)
    features = features.to(device).eval()
    extract = lambda x: features(x / 255.0)  # noqa: E731  clean-fid hands over (B, 3, H, W) in [0, 255]
    return cleanfid.get_folder_features(str(folder), extract, num_workers=0, batch_size=batch_size, device=device,
                                        mode="clean", custom_fn_resize=_native, verbose=False)


def frechet(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, d) and (M, d)."""
    from cleanfid import fid as cleanfid
    from scipy.linalg import LinAlgWarning

    if len(feats_a) < 2 or len(feats_b) < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 samples per set, got {len(feats_a)}, {len(feats_b)}")
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    cov_a, cov_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
    with warnings.catch_warnings():  # fewer samples than dimensions: singular covariances, which clean-fid handles
        warnings.filterwarnings("ignore", message="Matrix is singular", category=LinAlgWarning)
        return float(cleanfid.frechet_distance(mu_a, cov_a, mu_b, cov_b))


def fd_toy(dir_a: str | Path, dir_b: str | Path, features: nn.Module, device: torch.device | str = "cpu") -> float:
    """``fd_toy``: Fréchet distance between two folders of PNGs in the toy feature network's space (not FID)."""
    if (why := _check_folders(Path(dir_a), Path(dir_b))) is not None:
        raise ValueError(f"fd_toy {why}")
    return frechet(folder_features(dir_a, features, device), folder_features(dir_b, features, device))

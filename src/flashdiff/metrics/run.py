"""The perceptual metrics of one reconstruction run (``metrics`` config section), for ``flashdiff.evaluate``.

Per image: ``lpips`` (LPIPS-VGG) and ``toy_feature_mse`` (mean squared difference in the toy feature space).
Per run, from the run's folders (``images/`` against ``clean/``): ``fid`` (clean-fid, Inception) and ``fd_toy``
(Fréchet distance in the toy feature space), over exactly the images the scored rows name (failed images and
anything else left in the folders are not read). A metric that cannot be computed is null, with the reason and how
to enable it in ``unavailable`` (and on the console); nothing is ever computed with random weights.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flashdiff.metrics.fid import fd_toy, fid, fid_status
from flashdiff.metrics.perceptual import feature_mse, load_lpips, lpips_status
from flashdiff.metrics.toy_features import ToyFeatures
from flashdiff.records import image_name

log = logging.getLogger(__name__)

PER_IMAGE = ("lpips", "toy_feature_mse")
PER_RUN = ("fid", "fd_toy")


@dataclass
class MetricSettings:
    """``metrics.*``: which perceptual metrics to compute and where the toy feature network is."""

    lpips: bool = True
    fid: bool = True
    fd_toy: str | None = None  # folder of the toy feature network (null = off)
    lpips_net: str = "vgg"
    download: str = "auto"  # auto: fetch missing weights only when online and reachable; never: cache only


def _toy_features(folder: str | None, device: torch.device) -> tuple[ToyFeatures | None, str | None]:
    """The toy feature network, or the reason it is not there."""
    if not folder:
        return None, "metrics.fd_toy is null (off)"
    try:
        return ToyFeatures.from_pretrained(folder).to(device), None
    except FileNotFoundError as err:
        return None, str(err)


class ImageMetrics:
    """Per-image columns ``lpips`` and ``toy_feature_mse``; ``unavailable`` holds the reason of a missing one."""

    def __init__(self, settings: MetricSettings, device: torch.device | str = "cpu") -> None:
        self.unavailable: dict[str, str] = {}
        self.lpips, self.features = None, None
        if settings.lpips:
            self.lpips, why = load_lpips(settings.lpips_net, download=settings.download, device=device)
            if why:
                self.unavailable["lpips"] = why
        else:
            self.unavailable["lpips"] = "metrics.lpips=false (off)"
        self.features, why = _toy_features(settings.fd_toy, torch.device(device))
        if why:
            self.unavailable["toy_feature_mse"] = why

    def rows(self, x_hat: Tensor, x: Tensor) -> list[dict[str, float | None]]:
        """``{"lpips", "toy_feature_mse"}`` per image of [0, 1] batches (B, 3, H, W); None where unavailable."""
        lp = self.lpips(x_hat, x).tolist() if self.lpips is not None else [None] * x.shape[0]
        fm = feature_mse(self.features, x_hat, x).tolist() if self.features is not None else [None] * x.shape[0]
        return [{"lpips": a, "toy_feature_mse": b} for a, b in zip(lp, fm)]


def short_reason(why: str) -> str:
    """A reason for the console: up to its first ``;`` (what is missing, not how to get it), URLs left out."""
    first = why.split(";")[0]
    return " ".join(w for w in first.split() if "://" not in w)


def _column_mean(rows: list[dict[str, str]], key: str) -> tuple[float | None, str | None]:
    """Mean of a per-image column, or why there is none (empty, or filled for only part of the images)."""
    values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    if not values:
        return None, None
    if len(values) < len(rows):
        return None, f"{key} present for only {len(values)} of {len(rows)} images (a resumed run whose metric " \
                     "availability changed); rerun into a new directory"
    return sum(values) / len(values), None


def _set_metric(name: str, compute: Any) -> tuple[float | None, str | None]:
    """``(value, None)`` or ``(None, reason)`` for a folder-level metric; a non-finite value is a reason too."""
    try:
        value = float(compute())
    except (ValueError, RuntimeError, OSError) as err:
        return None, f"{name} failed: {type(err).__name__}: {err}"
    return (value, None) if math.isfinite(value) else (None, f"{name} is not finite ({value})")


def _missing_column_reason(settings: MetricSettings, key: str) -> str:
    """Why a per-image column is empty, as far as can be told now (cheap checks, nothing loaded)."""
    if key == "lpips":
        return "metrics.lpips=false (off)" if not settings.lpips else \
            lpips_status(settings.lpips_net, settings.download) or "lpips was not computed for this run's images"
    if not settings.fd_toy:
        return "metrics.fd_toy is null (off)"
    return "toy_feature_mse was not computed for this run's images"


@contextlib.contextmanager
def scored_folders(rows: list[dict[str, str]], images: Path, clean: Path) -> Iterator[tuple[Path, Path]]:
    """Two temporary folders of links: the reconstructions the ``rows`` name (one per row and draw) and their clean
    images (one per image), so a folder-level metric reads exactly the scored images."""
    with tempfile.TemporaryDirectory(prefix="flashdiff-scored-") as tmp:
        a, b = Path(tmp) / "images", Path(tmp) / "clean"
        a.mkdir()
        b.mkdir()
        for r in rows:
            index, draw = int(r["index"]), int(r.get("draw") or 0)
            (a / image_name(index, draw)).symlink_to((images / image_name(index, draw)).resolve())
            if not (b / f"{index:05d}.png").exists():
                (b / f"{index:05d}.png").symlink_to((clean / f"{index:05d}.png").resolve())
        yield a, b


def run_metrics(settings: MetricSettings, rows: list[dict[str, str]], images: Path, clean: Path,
                device: torch.device | str = "cpu") -> dict[str, Any]:
    """Means of the per-image columns and the folder-level ``fid`` / ``fd_toy``, with ``unavailable`` reasons.

    ``images`` holds the reconstructions and ``clean`` the clean test images, one PNG per image, same names; the
    folder-level metrics read only the images ``rows`` name.
    """
    with scored_folders(rows, images, clean) as (images, clean):
        return _run_metrics(settings, rows, images, clean, device)


def _run_metrics(settings: MetricSettings, rows: list[dict[str, str]], images: Path, clean: Path,
                 device: torch.device | str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    for key in PER_IMAGE:
        out[key], why = _column_mean(rows, key)
        if out[key] is None:
            unavailable[key] = why or _missing_column_reason(settings, key)
    if not settings.fid:
        unavailable["fid"] = "metrics.fid=false (off)"
    elif (why := fid_status(settings.download)) is not None:
        unavailable["fid"] = why
    else:
        out["fid"], why = _set_metric("FID", lambda: fid(images, clean, device))
        if why:
            unavailable["fid"] = why
    features, why = _toy_features(settings.fd_toy, torch.device(device))
    if features is None:
        unavailable["fd_toy"] = why
    else:
        out["fd_toy"], why = _set_metric("fd_toy", lambda: fd_toy(images, clean, features, device))
        if why:
            unavailable["fd_toy"] = why
    for key in PER_RUN:
        out.setdefault(key, None)
    for name in (*PER_IMAGE, *PER_RUN):
        if name in unavailable:  # once per metric, the short reason; how to enable it is in summary.json
            log.warning("%s unavailable: %s (how to enable it: summary.json, 'unavailable')", name,
                        short_reason(unavailable[name]))
    return out | {"unavailable": unavailable}

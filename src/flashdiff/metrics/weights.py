"""Where the pretrained networks of LPIPS and FID live, and whether they can be used without hanging offline.

The rule (ENVIRONMENT.md): check the cache file first; download only when the network is allowed
(``HF_HUB_OFFLINE`` unset) and the host answers within seconds; otherwise the metric is unavailable, with the
reason and the path where the weights would go. A value from random weights is never reported.
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from urllib.parse import urlparse

OFFLINE_VALUES = ("1", "true", "yes", "on")


def vgg16_url() -> str:
    """The torchvision VGG16 weights LPIPS-VGG loads (``vgg16-397923af.pth``)."""
    from torchvision.models import VGG16_Weights

    return VGG16_Weights.IMAGENET1K_V1.url


def vgg16_path() -> Path:
    """Where torchvision caches (and looks for) the VGG16 weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(vgg16_url()).path).name


def inception_url() -> str:
    """The Inception network clean-fid's ``clean`` mode loads (``inception-2015-12-05.pt``)."""
    from cleanfid.downloads_helper import inception_url as url

    return url


def inception_path() -> Path:
    """Where clean-fid caches (and looks for) its Inception network: ``/tmp`` (``./`` on Windows), as clean-fid."""
    folder = "./" if platform.system() == "Windows" else "/tmp"
    return Path(folder) / Path(urlparse(inception_url()).path).name


def network_allowed() -> bool:
    """False when ``HF_HUB_OFFLINE`` (the project's offline switch, set by tests and make) says offline."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in OFFLINE_VALUES


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` seconds (one try, no retries)."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def weights_status(path: Path, url: str, download: str) -> str | None:
    """None when ``path`` is cached or may be fetched now; else why not. ``download``: ``auto`` or ``never``."""
    if path.exists():
        return None
    if download not in ("auto", "never"):
        raise ValueError(f"metrics.download must be auto or never, got {download!r}")
    if download == "never":
        return f"{path} is not cached and metrics.download=never"
    if not network_allowed():
        return f"{path} is not cached and HF_HUB_OFFLINE is set (no download attempted)"
    if not reachable(url):
        return f"{path} is not cached and {urlparse(url).hostname} is not reachable (no network)"
    return None


def how_to_provide(path: Path, url: str) -> str:
    """The instruction printed beside an unavailable metric."""
    return f"to enable it, put {Path(url).name} from {url} at {path} (or run once with network access)"

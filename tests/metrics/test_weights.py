"""Availability of LPIPS / FID weights: cache first, never a slow download attempt offline."""

import time

import pytest

from flashdiff.metrics import weights
from flashdiff.metrics.fid import fid_status
from flashdiff.metrics.perceptual import load_lpips, lpips_status


def test_cached_file_is_available_and_a_missing_one_says_why(tmp_path, monkeypatch):
    cached = tmp_path / "w.pth"
    cached.write_bytes(b"x")
    assert weights.weights_status(cached, "https://example.invalid/w.pth", "auto") is None
    missing = tmp_path / "missing.pth"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in weights.weights_status(missing, "https://example.invalid/w.pth", "auto")
    assert "download=never" in weights.weights_status(missing, "https://example.invalid/w.pth", "never")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(weights, "reachable", lambda url, timeout=3.0: False)
    assert "not reachable" in weights.weights_status(missing, "https://example.invalid/w.pth", "auto")
    with pytest.raises(ValueError, match="auto or never"):
        weights.weights_status(missing, "https://example.invalid/w.pth", "sometimes")


def test_lpips_looks_in_torch_home_and_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert weights.vgg16_path() == expected
    started = time.perf_counter()
    model, why = load_lpips("vgg")
    assert model is None and str(expected) in why and "download.pytorch.org" in why
    assert time.perf_counter() - started < 5  # no download attempted
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"placeholder")  # only the presence check: nothing is loaded here
    assert lpips_status("vgg") is None
    with pytest.raises(ValueError, match="only vgg"):
        lpips_status("alex")


def test_fid_status_names_clean_fids_cache_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("flashdiff.metrics.fid.inception_path", lambda: tmp_path / "inception-2015-12-05.pt")
    why = fid_status()
    assert "inception-2015-12-05.pt" in why and str(tmp_path) in why
    (tmp_path / "inception-2015-12-05.pt").write_bytes(b"x")
    assert fid_status() is None
    assert weights.inception_path().name == "inception-2015-12-05.pt"


@pytest.mark.slow
def test_a_cached_vgg16_file_is_what_lpips_loads(tmp_path, monkeypatch):
    """The user path with no config change: a VGG16 state dict at $TORCH_HOME/hub/checkpoints is picked up by
    torchvision inside lpips. The file here holds random weights (the real ones are absent), so only the loading
    path is checked, never the value."""
    import torch
    from torchvision.models import vgg16

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    state = vgg16().state_dict()
    weights.vgg16_path().parent.mkdir(parents=True)
    torch.save(state, weights.vgg16_path())
    metric, why = load_lpips("vgg")
    assert why is None and metric is not None
    first_conv = next(p for n, p in metric.named_parameters() if n.endswith("0.weight") and p.dim() == 4)
    assert torch.equal(first_conv.detach().cpu(), state["features.0.weight"])  # the cached file's weights
    x = torch.rand(2, 3, 32, 32)
    assert metric(x, x.flip(-1)).shape == (2,)

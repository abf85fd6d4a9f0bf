"""Folder-level Fréchet distances with a small custom (random) feature extractor: code path only, not FID values."""

import pytest
import torch
from torchvision.utils import save_image

from flashdiff.metrics.fid import fd_toy, frechet
from flashdiff.metrics.run import ImageMetrics, MetricSettings, run_metrics
from flashdiff.metrics.toy_features import ToyFeatures
from flashdiff.records import SAMPLE_COLUMNS


def _folders(root, n=6):
    """clean/ and images/ (a degraded copy) with n PNGs each, same names."""
    torch.manual_seed(0)
    x = torch.rand(n, 3, 32, 32)
    (root / "clean").mkdir()
    (root / "images").mkdir()
    for k in range(n):
        save_image(x[k], root / "clean" / f"{k:05d}.png")
        save_image((0.5 * x[k] + 0.25), root / "images" / f"{k:05d}.png")
    return x


@pytest.fixture
def features_dir(tmp_path):
    torch.manual_seed(0)
    ToyFeatures((8, 16), feature_dim=4).save_pretrained(tmp_path / "features")
    return tmp_path / "features"


def test_frechet_is_zero_on_identical_sets_and_positive_otherwise():
    f = torch.randn(50, 4).double().numpy()
    assert abs(frechet(f, f)) < 1e-6 and frechet(f, f + 1.0) == pytest.approx(4.0, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        frechet(f[:1], f)


def test_fd_on_folders(tmp_path, features_dir):
    _folders(tmp_path)
    net = ToyFeatures.from_pretrained(features_dir)
    assert fd_toy(tmp_path / "clean", tmp_path / "clean", net) == pytest.approx(0.0, abs=1e-6)
    assert fd_toy(tmp_path / "images", tmp_path / "clean", net) > 0
    (tmp_path / "one").mkdir()
    with pytest.raises(ValueError, match="at least 2 images"):
        fd_toy(tmp_path / "one", tmp_path / "clean", net)


def test_run_metrics_fills_what_it_can_and_says_why_for_the_rest(tmp_path, features_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr("flashdiff.metrics.fid.inception_path", lambda: tmp_path / "inception-2015-12-05.pt")
    x = _folders(tmp_path)
    settings = MetricSettings(lpips=True, fid=True, fd_toy=str(features_dir))
    per_image = ImageMetrics(settings)
    assert set(per_image.unavailable) == {"lpips"}
    rows = per_image.rows(0.5 * x + 0.25, x)
    assert [r["lpips"] for r in rows] == [None] * 6 and all(r["toy_feature_mse"] > 0 for r in rows)
    csv_rows = [dict.fromkeys(SAMPLE_COLUMNS, "") | {"index": str(k), "draw": "0",
                                                     "toy_feature_mse": str(r["toy_feature_mse"])}
                for k, r in enumerate(rows)]
    out = run_metrics(settings, csv_rows, tmp_path / "images", tmp_path / "clean")
    assert out["lpips"] is None and out["fid"] is None and out["fd_toy"] > 0 and out["toy_feature_mse"] > 0
    assert set(out["unavailable"]) == {"lpips", "fid"}
    assert "vgg16-397923af.pth" in out["unavailable"]["lpips"] and "inception" in out["unavailable"]["fid"]
    off = run_metrics(MetricSettings(lpips=False, fid=False, fd_toy=None), csv_rows[:3] + [
        r | {"toy_feature_mse": ""} for r in csv_rows[3:]], tmp_path / "images", tmp_path / "clean")
    assert off["fd_toy"] is None and "off" in off["unavailable"]["fd_toy"] and "off" in off["unavailable"]["fid"]
    assert "only 3 of 6" in off["unavailable"]["toy_feature_mse"]

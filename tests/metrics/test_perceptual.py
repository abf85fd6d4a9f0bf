"""LPIPS's code path with a RANDOM backbone (values meaningless, never reported) and the toy feature distance."""

import pytest
import torch

from flashdiff.metrics.perceptual import feature_mse, load_lpips
from flashdiff.metrics.toy_features import ToyFeatures


@pytest.fixture(scope="module")
def random_lpips():
    """LPIPS-VGG with a random backbone (pnet_rand): exercises the code path only."""
    model, why = load_lpips("vgg", random_backbone=True)
    assert why is None and model.random_backbone
    return model


def test_lpips_code_path_per_sample(random_lpips):
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32)
    d_same = random_lpips(x, x)
    d_other = random_lpips(torch.rand(3, 3, 32, 32), x)
    assert d_same.shape == (3,) and torch.allclose(d_same, torch.zeros(3), atol=1e-6)
    assert (d_other > d_same).all()
    # one sample's value does not depend on its batch
    torch.testing.assert_close(random_lpips(x[1:2], x[1:2] * 0.5), random_lpips(x, x * 0.5)[1:2], atol=1e-5, rtol=1e-4)


def test_toy_feature_mse_and_round_trip(tmp_path):
    torch.manual_seed(0)
    net = ToyFeatures((8, 16), feature_dim=8, classes=3)  # a small custom extractor, random: code path only
    net.save_pretrained(tmp_path / "f")
    loaded = ToyFeatures.from_pretrained(tmp_path / "f")
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(loaded(x), net.eval()(x))
    assert loaded(x).shape == (4, 8) and loaded.logits(x).shape == (4, 3)
    d = feature_mse(loaded, x.flip(0), x)
    assert d.shape == (4,) and torch.allclose(feature_mse(loaded, x, x), torch.zeros(4))
    with pytest.raises(FileNotFoundError, match="train=fd_features"):
        ToyFeatures.from_pretrained(tmp_path / "none")


def test_image_metrics_fill_the_lpips_column_when_a_model_loads(random_lpips, monkeypatch):
    """With weights present the column is filled; simulated here with the RANDOM backbone (code path only)."""
    from flashdiff.metrics.run import ImageMetrics, MetricSettings

    monkeypatch.setattr("flashdiff.metrics.run.load_lpips", lambda *a, **k: (random_lpips, None))
    metrics = ImageMetrics(MetricSettings(lpips=True, fid=False, fd_toy=None))
    x = torch.rand(2, 3, 32, 32)
    rows = metrics.rows(x, x)
    assert "lpips" not in metrics.unavailable and [r["lpips"] for r in rows] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert metrics.unavailable["toy_feature_mse"].startswith("metrics.fd_toy is null")

"""The toy feature network behind fd_toy: a few training steps, the saved folder, and the bundled one's sanity."""

import json

import pytest
import torch

from flashdiff.data import ToyImages
from flashdiff.data.toy import load_photo
from flashdiff.metrics.toy_features import ToyFeatures
from flashdiff.toy.evaluate_world import toy_split
from flashdiff.train.fd_features import PhotoRegionCrops, degradation_check, train_fd_features
from flashdiff.train.loop import LoopSettings, TrainingJob
from tests.conftest import ROOT

BUNDLED = ROOT / "models" / "toy_fd_features"


def test_region_crops_are_deterministic_and_labelled():
    data = PhotoRegionCrops(32, length=10, grid=2)
    a, b = data[3], data[3]
    assert a["x"].shape == (3, 32, 32) and (a["x"] == b["x"]).all() and a["label"] == b["label"]
    assert data.classes == 9 * 4 and all(0 <= data[k]["label"] < data.classes for k in range(10))


def test_region_crops_come_from_the_photos_of_the_world_scale(monkeypatch):
    from flashdiff.train import fd_features

    asked = []
    monkeypatch.setattr(fd_features, "load_photo", lambda name, downscale=1: asked.append(downscale) or
                        load_photo(name, downscale))
    native, harder = PhotoRegionCrops(32, length=4), PhotoRegionCrops(32, length=4, downscale=2)
    assert [native[k]["label"] for k in range(4)] and set(asked) == {1}
    asked.clear()
    assert harder[0]["x"].shape == (3, 32, 32) and set(asked) == {2}
    assert not torch.equal(native[0]["x"], harder[0]["x"])  # same draw, different photo scale


def test_train_save_load(tmp_path):
    settings = LoopSettings(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, checkpoint_every=3)
    job = TrainingJob(ToyImages("train", length=1), ToyImages("val"), tmp_path / "m", tmp_path / "w")
    result = train_fd_features(job, arch={"widths": [8, 16], "feature_dim": 8}, loop=settings, max_val_images=16)
    for key in ("fresh_crop_accuracy", "val_fd_blur_3", "init_val_fd_noise_0.05", "val_fd_split_half"):
        assert key in result
    info = json.loads((tmp_path / "m" / "training.json").read_text())
    assert info["steps"] == 3 and info["arch"]["grid"] == 2
    net = ToyFeatures.from_pretrained(tmp_path / "m")
    assert net.feature_dim == 8 and net.classes == 36


@pytest.mark.skipif(not BUNDLED.exists(), reason="models/toy_fd_features not trained yet")
def test_bundled_network_sees_blur_and_noise():
    check = degradation_check(ToyFeatures.from_pretrained(BUNDLED), toy_split("test"), max_images=100)
    assert check["blur_0.75"] < check["blur_1.5"] < check["blur_3"]
    assert 0 < check["noise_0.025"] < check["noise_0.05"]

"""``python -m flashdiff.toy.evaluate_world``: the toy world's splits and what it measures."""

import pytest
import torch
from omegaconf import OmegaConf

from flashdiff.data import ToyImages
from flashdiff.operators import GaussianBlur
from flashdiff.toy.evaluate_world import measurement_psnr, operator, toy_split, toy_world
from tests.conftest import ROOT


def test_the_default_world_comes_from_the_dataset_config():
    world = OmegaConf.load(ROOT / "conf" / "dataset" / "toy.yaml")
    assert toy_world() == (world.downscale, world.val_stride)
    other = 3 - world.downscale  # 1 <-> 2: another world keeps only the grid it is given
    assert toy_world(other) == (other, None) and toy_world(other, 16) == (other, 16)
    assert len(toy_split("val", 2, 16)) == 104 and len(toy_split("val", 1)) == 126


def test_measurement_psnr_falls_with_the_severity_of_the_given_operator():
    data = ToyImages("test", length=4)
    scores = measurement_psnr(GaussianBlur(kernel_size=9), [0.0, 1.0], data)
    assert list(scores) == ["0", "1"] and scores["0"] > scores["1"]
    assert type(operator("toy_inpaint")).__name__ == "Inpainting"
    with pytest.raises(FileNotFoundError):
        operator("nope")
    assert torch.isfinite(torch.tensor(list(scores.values()))).all()

"""SwinIR, the supervised comparison: the network's shape contract, its saved folder, and the method's output."""

import json

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.solvers.swinir import PAPER_ARCH, SwinIRRestorer, swinir
from flashdiff.types import COUNTERS
from tests.conftest import TINY_SWINIR


def test_paper_architecture_is_app_a():
    assert PAPER_ARCH["embed_dim"] == 96 and PAPER_ARCH["depths"] == [6, 6, 6, 6]
    net = SwinIRRestorer().net
    assert len(net.layers) == 4 and all(len(layer.residual_group.blocks) == 6 for layer in net.layers)
    assert net.upscale == 1 and net.upsampler == "" and net.img_range == 1.0 and net.embed_dim == 96


@pytest.mark.parametrize("size", [32, 20])  # 20 is padded to the window size inside and cropped back
def test_output_has_the_input_shape(size):
    torch.manual_seed(0)
    net = SwinIRRestorer(TINY_SWINIR).eval()
    y = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert net(y).shape == y.shape


def test_restoration_setting_cannot_be_overridden():
    with pytest.raises(ValueError, match="upscale"):
        SwinIRRestorer(TINY_SWINIR | {"upscale": 2})


def test_save_load_round_trip_is_identical(tmp_path):
    torch.manual_seed(0)
    net = SwinIRRestorer(TINY_SWINIR).eval()
    net.save_pretrained(tmp_path / "m", metadata={"operator": "blur"})
    config = json.loads((tmp_path / "m/config.json").read_text())
    assert config["arch"]["embed_dim"] == 12 and config["metadata"] == {"operator": "blur"}
    loaded = SwinIRRestorer.from_pretrained(tmp_path / "m")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    y = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(y), loaded(y))


def test_missing_folder_names_the_key_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="solver.network.folder=.*train=swinir"):
        SwinIRRestorer.from_pretrained(tmp_path / "nothing")


def test_method_returns_images_with_nfe_and_every_count_zero():
    torch.manual_seed(0)
    net = SwinIRRestorer(TINY_SWINIR).eval()
    y, z = torch.rand(3, 3, 32, 32), torch.randn(3, 4, 16, 16)
    out = swinir(None, None, y, None, z, torch.zeros(3, dtype=torch.int64), generators=generators([1, 2, 3]),
                 network=net)
    with torch.no_grad():
        assert torch.equal(out.images, net(y))
    assert out.nfe.tolist() == [0, 0, 0] and all(getattr(out, name).tolist() == [0, 0, 0] for name in COUNTERS)
    assert torch.equal(out.latents, z)

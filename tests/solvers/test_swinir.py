"""SwinIR, the supervised comparison: the network's shape contract, its saved folder, and the method's output."""

import json

import pytest
import torch

from flashdiff.solvers.swinir import PAPER_ARCH, SwinIRRestorer
from flashdiff.types import COUNTERS
from tests.conftest import TINY_SWINIR


def test_paper_architecture_is_app_a():
    assert PAPER_ARCH["embed_dim"] == 96 and PAPER_ARCH["depths"] == [6, 6, 6, 6]
    net = SwinIRRestorer().net
    assert len(net.layers) == 4 and all(len(layer.residual_group.blocks) == 6 for layer in net.layers)
    assert net.upscale == 1 and net.upsampler == "" and net.img_range == 1.0 and net.embed_dim == 96


@pytest.mark.parametrize("size", [32, 20])  # 20 is padded to the window size inside and cropped back
def test_output_is_y_plus_a_learned_residual_at_the_input_size(size):
    torch.manual_seed(0)
    net = SwinIRRestorer(TINY_SWINIR).eval()
    y = torch.rand(2, 3, size, size)
    with torch.no_grad():
        x_hat = net(y)
        assert x_hat.shape == y.shape and (x_hat - y).abs().max() > 1e-2  # random weights: a residual
        net.net.conv_last.weight.zero_()
        net.net.conv_last.bias.zero_()
        # x̂ = y + conv_last(features): with the last conv zero it returns y itself, pixel for pixel after the crop
        torch.testing.assert_close(net(y), y, rtol=0, atol=1e-6)


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
    with pytest.raises(FileNotFoundError, match="solver.folder=.*train=swinir"):
        SwinIRRestorer.from_pretrained(tmp_path / "nothing")


def test_as_a_restorer_it_reconstructs_in_chunks_with_nfe_and_every_count_zero():
    from flashdiff.operators import GaussianBlur
    from flashdiff.reconstruction import reconstruct

    torch.manual_seed(0)
    net = SwinIRRestorer(TINY_SWINIR).eval()
    op = GaussianBlur(kernel_size=5)
    items = [{"x": torch.rand(3, 32, 32), "index": k, "id": f"img{k}", "seed": k} for k in range(3)]
    results = list(reconstruct(items, op, None, net, batch_size=2))
    assert [r.index for r in results] == [0, 1, 2]
    for r in results:
        with torch.no_grad():
            torch.testing.assert_close(r.x_hat, net(r.y[None])[0].clamp(0, 1), rtol=1e-4, atol=1e-5)
        assert r.nfe == 0 and set(r.costs.values()) == {0} and set(r.costs) == set(COUNTERS)
        assert r.t_start is None and r.sigma2_hat is None

"""Nonlinear blur: the bkse KernelWizard's released key layout, weights loading, per-image kernel codes, the authors'
rescaling, and PSLD's refusal. Random weights only (the released GOPRO_wVAE.pth is never downloaded)."""

from __future__ import annotations

import copy
from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf

from flashdiff.data.seeding import generators
from flashdiff.operators import KernelWizard, NonlinearBlur
from flashdiff.solvers.psld import psld
from tests.conftest import ROOT, AnalyticLDM, run

TINY = {"nf": 4, "front_blocks": 1, "back_blocks": 2, "kernel_dim": 8, "extractor_blocks": 1}
# The released GOPRO_wVAE state dict (bkse options/generate_blur/default.yml: nf 64, 10 front and 20 back residual
# blocks, kernel_dim 512 with the VAE's mean and log-variance, 4 extractor blocks), key -> shape; derived from the
# published architecture, independently of flashdiff's module code.
RELEASED = {
    "feature_extractor.0.weight": (64, 3, 3, 3), "feature_extractor.4.bias": (64,),
    "feature_extractor.15.conv2.weight": (64, 64, 3, 3),
    "kernel_extractor.model.1.weight": (64, 128, 7, 7), "kernel_extractor.model.16.weight": (1024, 1024, 3, 3),
    "kernel_extractor.model.22.conv_block.5.weight": (1024, 1024, 3, 3),
    "adapter.model.down.0.weight": (64, 64, 4, 4), "adapter.model.up.1.weight": (128, 64, 4, 4),
    "adapter.model.up.1.bias": (64,), "adapter.model.submodule.down.1.weight": (128, 64, 4, 4),
    "adapter.model.submodule.submodule.submodule.submodule.down.1.weight": (512, 512, 4, 4),
    "adapter.model.submodule.submodule.submodule.submodule.up.1.weight": (1024, 512, 4, 4),
    "recon_trunk.19.conv1.bias": (64,), "recon_trunk.20.weight": (256, 64, 3, 3),
    "recon_trunk.23.weight": (256, 64, 3, 3),
    "recon_trunk.26.weight": (64, 64, 3, 3), "recon_trunk.28.weight": (3, 64, 3, 3), "recon_trunk.28.bias": (3,),
}


def released_count() -> int:
    """Number of tensors in the released state dict, counted from the architecture description."""
    features = 3 * 2 + 10 * 4  # three convs with bias, ten residual blocks (two convs with bias)
    extractor = 1 + 5 + 4 * 2  # bias-free convs: stem, five stride-2, four blocks of two
    adapter = 5 + 5 + 1  # five bias-free down convs; five up convs, bias-free but the outermost one
    trunk = 20 * 4 + 4 * 2  # twenty residual blocks, four convs with bias
    return features + extractor + adapter + trunk


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """A random tiny KernelWizard state dict saved with torch.save, as the released .pth is."""
    torch.manual_seed(0)
    net = KernelWizard(**TINY)
    for p in net.parameters():  # not the default init: loading must really replace the weights
        p.data.normal_(0.0, 0.15)  # large enough that the kernel code visibly changes the output
    path = tmp_path_factory.mktemp("bkse") / "GOPRO_wVAE.pth"
    torch.save(net.state_dict(), path)
    return path


def tiny_op(weights: Path, **kwargs) -> NonlinearBlur:
    return NonlinearBlur(weights, **TINY, **kwargs)


def images(batch: int, size: int = 128, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_full_size_network_has_the_released_key_layout():
    with torch.device("meta"):
        state = KernelWizard().state_dict()
    assert len(state) == released_count()
    for key, shape in RELEASED.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("kernel_extractor") and k.endswith("bias") for k in state)
    assert KernelWizard().code_shape(256, 256) == (512, 2, 2)  # the authors' randn(1, 512, 2, 2)


def test_loads_saved_weights_strictly(tiny_weights):
    op = tiny_op(tiny_weights)
    saved = torch.load(tiny_weights, weights_only=True)
    assert set(op.network.state_dict()) == set(saved)
    assert all(torch.equal(op.network.state_dict()[k], v) for k, v in saved.items())
    assert not any(p.requires_grad for p in op.network.parameters())


def test_wrong_state_dict_names_the_key(tmp_path, tiny_weights):
    bad = torch.load(tiny_weights, weights_only=True)
    bad.pop("adapter.model.up.1.bias")
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"paths\.bkse_weights=.*adapter\.model\.up\.1\.bias"):
        tiny_op(tmp_path / "bad.pth")


def test_missing_weights_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"paths\.bkse_weights=.*GOPRO_wVAE\.pth"):
        NonlinearBlur(tmp_path / "GOPRO_wVAE.pth")


def test_kernel_code_is_the_first_draw_of_the_image_seed(tiny_weights):
    op = tiny_op(tiny_weights)
    seeds = torch.tensor([7, 123456789])
    params = op.draw(seeds, (2, 3, 256, 256))
    assert params["code"].shape == (2, 32, 2, 2) and torch.equal(params["severity"], torch.ones(2))
    for b, s in enumerate(seeds.tolist()):
        expected = torch.randn(32, 2, 2, generator=torch.Generator().manual_seed(s)) * 1.2
        assert torch.equal(params["code"][b], expected)


def test_deterministic_per_seed_new_kernel_per_image_same_across_calls(tiny_weights):
    op = tiny_op(tiny_weights)
    x = images(1).expand(3, -1, -1, -1)  # one image, three seeds: 1 and 2 differ, 1 repeats
    seeds = torch.tensor([1, 2, 1])
    params = op.draw(seeds, tuple(x.shape))
    with torch.no_grad():
        y = op.A(x, params)
        again = op.A(x, op.draw(seeds, tuple(x.shape)))  # a later call on the same images
        alone = op.A(x[2:], op.draw(seeds[2:], (1, *x.shape[1:])))  # batch composition does not matter
        noisy = op.measure(x, params, seeds)
    assert not torch.allclose(y[0], y[1], atol=1e-4)  # a new kernel per image
    torch.testing.assert_close(y[0], y[2], rtol=0, atol=1e-6)
    torch.testing.assert_close(y, again, rtol=0, atol=0)
    torch.testing.assert_close(y[2:], alone, rtol=0, atol=1e-6)
    assert 0.8 * op.noise_std < (noisy - y).std() < 1.2 * op.noise_std


def test_zero_network_shows_the_authors_rescaling(tiny_weights, tmp_path):
    """K(u) = u for a zero network, so A(x) = clamp(2 (x + 1) / 2 - 1, -1, 1) = x on [0, 1], clamped above 1."""
    net = KernelWizard(**TINY)
    for p in net.parameters():
        p.data.zero_()
    torch.save(net.state_dict(), tmp_path / "zero.pth")
    op = tiny_op(tmp_path / "zero.pth")
    x = images(2)
    params = op.draw(torch.tensor([1, 2]), tuple(x.shape))
    torch.testing.assert_close(op.A(x, params), x, rtol=0, atol=1e-6)
    assert op.A(x + 0.5, params).max() <= 1.0


def test_severity_blends_and_training_draws_the_range(tiny_weights):
    op = tiny_op(tiny_weights)
    x = images(2)
    params = op.draw(torch.tensor([3, 4]), tuple(x.shape))
    blurred = op.A(x, params)
    params["severity"] = torch.tensor([0.0, 0.5])
    mixed = op.A(x, params)
    torch.testing.assert_close(mixed[0], x[0])
    torch.testing.assert_close(mixed[1], 0.5 * (x[1] + blurred[1]), rtol=0, atol=1e-6)
    t = op.draw(None, (64, 3, 128, 128), train=True, generator=torch.Generator().manual_seed(0))["severity"]
    assert t.min() >= 0.0 and t.max() <= 1.0 and t.max() - t.min() > 0.5


def test_differentiable_in_x(tiny_weights):
    op = tiny_op(tiny_weights)
    x = images(1).requires_grad_(True)
    op.A(x, op.draw(torch.tensor([5]), tuple(x.shape))).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_copies_share_the_frozen_network(tiny_weights):
    op = tiny_op(tiny_weights)
    other = copy.deepcopy(op)
    other.severity_range = (0.5, 0.5)
    assert other.network is op.network and op.severity_range == (1.0, 1.0)


def test_image_sides_must_divide_by_128(tiny_weights):
    with pytest.raises(ValueError, match="divisible by 128"):
        tiny_op(tiny_weights).draw(torch.tensor([1]), (1, 3, 64, 64))


def test_no_transpose_and_psld_refuses_it_by_name(tiny_weights):
    op = tiny_op(tiny_weights)
    x = images(1)
    params = op.draw(torch.tensor([1]), tuple(x.shape))
    with pytest.raises(NotImplementedError, match="NonlinearBlur"):
        op.A_adjoint(x, params)
    z = torch.randn(1, 3, 128, 128)
    with pytest.raises(ValueError, match="psld.*NonlinearBlur"):
        run(psld(), AnalyticLDM(shape=(3, 128, 128)), op, op.measure(x, params), params, z, torch.tensor([3]),
            generators([1]))


def test_config_instantiates_with_weights(tiny_weights):
    cfg = OmegaConf.load(ROOT / "conf" / "operator" / "nonlinear_blur.yaml")
    op = hydra.utils.instantiate(cfg, weights=str(tiny_weights), **TINY)
    assert isinstance(op, NonlinearBlur) and op.severity_range == (1.0, 1.0) and op.code_scale == 1.2
    assert op.train_severity_range == (0.0, 1.0) and op.noise_std == 0.05

"""The σ heads: each option starts where it should, trains what it should, and saves and reloads its own config;
folders written in the flag era (``head_*`` keys in config.json) load into the same heads."""

import json
from functools import partial

import pytest
import torch
from safetensors.torch import load_file, save_file

from flashdiff.severity.encoder import ConvHead, SeverityEncoder, head_factory
from flashdiff.severity.heads import ContextFeatureHead, ContextHead, EnergyHead, FeatureHead, StopGrad
from tests.conftest import build_tiny_ldm

torch.set_num_threads(1)
HEADS = {  # head factory -> the flags of the flag era that meant it
    "paper": (partial(ConvHead, lr_mult=10.0), {}),
    "context": (partial(ContextHead, width=8, lr_mult=10.0), {"head_context": 8}),
    "features": (partial(FeatureHead, lr_mult=10.0), {"head_features": True}),
    "context_features": (partial(ContextFeatureHead, width=4, lr_mult=3.0),
                         {"head_context": 4, "head_features": True, "head_lr_mult": 3.0}),
    "energy": (partial(EnergyHead, width=8, lr_mult=10.0), {"head_energy": 8}),
    "energy_early": (partial(EnergyHead, width=8, early=True, lr_mult=100.0),
                     {"head_energy": 8, "head_energy_early": True, "head_lr_mult": 100.0}),
    "stop_grad_context": (partial(StopGrad, head=partial(ContextHead, width=8, lr_mult=10.0)),
                          {"head_context": 8, "head_stop_grad": True}),
}


@pytest.fixture(scope="module")
def ldm():
    return build_tiny_ldm()


def _randomised(enc: SeverityEncoder) -> SeverityEncoder:
    """Every head parameter drawn at random, so that zero-initialised branches count in a comparison."""
    with torch.no_grad():
        for p in enc.head.parameters():
            p.normal_(0, 0.1)
    return enc


def test_options_start_as_the_paper_head_and_stop_grad_keeps_sigma_off_the_encoder(ldm):
    y = torch.rand(2, 3, 32, 32)
    plain = SeverityEncoder.from_latent_diffusion(ldm)
    ctx = SeverityEncoder.from_latent_diffusion(ldm, partial(StopGrad, head=partial(ContextHead, width=8)))
    ctx.head.inner.load_state_dict(plain.head.state_dict(), strict=False)
    torch.testing.assert_close(ctx(y)[1], plain(y)[1])  # the zero-initialised context branch changes nothing
    ctx(y)[1].sum().backward()
    assert all(p.grad is None for p in ctx.encoder.parameters())
    assert ctx.head.inner.weight.grad is not None and ctx.head.inner.context[0].weight.grad is not None


def test_feature_head_starts_as_the_paper_head_and_reads_encoder_features(ldm):
    y = torch.rand(2, 3, 32, 32)
    plain = SeverityEncoder.from_latent_diffusion(ldm)
    feat = SeverityEncoder.from_latent_diffusion(ldm, FeatureHead)
    feat.head.load_state_dict(plain.head.state_dict(), strict=False)
    torch.testing.assert_close(feat(y)[1], plain(y)[1])  # zero-initialised feature weights: the paper's head
    feat(y)[1].sum().backward()
    assert feat.head.feature_weight.grad.abs().sum() > 0  # the head sees the features conv_out reads
    assert feat.encoder.conv_in.weight.grad.abs().sum() > 0  # and sigma trains the whole encoder
    with torch.no_grad():
        feat.head.feature_weight.normal_()
    assert not torch.allclose(feat(y)[1], plain(y)[1])


def test_energy_head_starts_constant_and_learns_fast(ldm):
    y = torch.rand(3, 3, 32, 32)
    enc = SeverityEncoder.from_latent_diffusion(ldm, partial(EnergyHead, width=8, lr_mult=10.0))
    assert not hasattr(enc.head, "weight")  # the 1x1 head is replaced, not left without gradients
    assert enc.init_head_scale(y, 0.05) == 1.0
    torch.testing.assert_close(enc(y)[1], torch.full((3,), 0.05))  # constant v0 before training
    enc(y)[1].sum().backward()
    last = enc.head.mlp[-1].parametrizations.weight.original
    assert last.grad.abs().sum() > 0 and enc.encoder.conv_in.weight.grad.abs().sum() == 0  # zero last layer first
    torch.testing.assert_close(enc.head.mlp[-1].weight, 10.0 * last)  # stored raw, used × lr_mult
    with torch.no_grad():
        last.normal_()
    assert enc(y)[1].std() > 0 and (enc(y)[1] > 0).all()
    with pytest.raises(ValueError, match="EnergyHead"):
        SeverityEncoder.from_latent_diffusion(ldm, partial(EnergyHead, width=0))


def test_energy_head_early_branch_reads_the_first_conv(ldm):
    y = torch.rand(3, 3, 32, 32)
    enc = SeverityEncoder.from_latent_diffusion(ldm, partial(EnergyHead, width=8, early=True))
    enc.init_head_scale(y, 0.05)
    torch.testing.assert_close(enc(y)[1], torch.full((3,), 0.05))  # still a constant v0 before training
    with torch.no_grad():
        enc.head.mlp[-1].parametrizations.weight.original.normal_()
    seen = {}
    hooks = [enc.encoder.conv_in.register_forward_hook(lambda m, a, out: seen.update(early=out)),
             enc.encoder.conv_out.register_forward_pre_hook(lambda m, a: seen.update(features=a[0]))]
    sigma2_hat = enc(y)[1]
    for hook in hooks:
        hook.remove()
    assert seen["early"].shape[-2:] == y.shape[-2:]  # full resolution, unlike the last hidden features
    torch.testing.assert_close(sigma2_hat, enc.head(None, seen["features"], seen["early"]))
    sigma2_hat.sum().backward()
    assert enc.head.early[0].parametrizations.weight.original.grad.abs().sum() > 0
    assert enc.head.mlp[0].in_features == 2 * 8  # both sets of log energies


@pytest.mark.parametrize("name", sorted(HEADS))
def test_a_head_saves_and_reloads_its_own_config(name, ldm, tmp_path):
    enc = _randomised(SeverityEncoder.from_latent_diffusion(ldm, HEADS[name][0]))
    enc.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["head"]
    assert saved == enc.head.config() and saved["_target_"].startswith("flashdiff.severity.")
    assert "_partial_" not in saved and head_factory(saved).func is type(enc.head)
    loaded = SeverityEncoder.from_pretrained(tmp_path)
    assert type(loaded.head) is type(enc.head) and loaded.head.config() == saved
    y = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(y)[1], enc(y)[1], rtol=0, atol=0)


def _to_flags(folder, flags: dict) -> None:
    """Rewrite a saved encoder folder as the flag era wrote it: ``head_*`` keys, weights under the old names."""
    config = json.loads((folder / "config.json").read_text())
    head = config.pop("head")
    config |= {"head_lr_mult": head.get("lr_mult", head.get("head", {}).get("lr_mult")), "head_context": 0,
               "head_stop_grad": False, "head_features": False, "head_energy": 0, "head_energy_early": False} | flags
    (folder / "config.json").write_text(json.dumps(config))
    old = {}
    for key, value in load_file(folder / "model.safetensors").items():
        key = key.replace("head.inner.", "head.")
        if flags.get("head_energy"):
            key = key.replace("head.", "energy_head.", 1)
        for new, was in (("head.weight", "head_weight"), ("head.bias", "head_bias"),
                         ("head.feature_weight", "feature_weight"), ("head.context.", "context.")):
            key = was + key[len(new):] if key.startswith(new) else key
        old[key] = value
    save_file(old, folder / "model.safetensors")


@pytest.mark.parametrize("name", sorted(HEADS))
def test_a_flag_style_folder_loads_into_the_same_head(name, ldm, tmp_path):
    enc = _randomised(SeverityEncoder.from_latent_diffusion(ldm, HEADS[name][0]))
    enc.save_pretrained(tmp_path)
    _to_flags(tmp_path, HEADS[name][1])
    assert "head" not in json.loads((tmp_path / "config.json").read_text())
    loaded = SeverityEncoder.from_pretrained(tmp_path)
    assert loaded.head.config() == enc.head.config()
    y = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(y)[1], enc(y)[1], rtol=0, atol=0)


def test_a_head_target_must_name_a_sigma_head():
    with pytest.raises(TypeError, match="not a σ head"):
        head_factory({"_target_": "torch.nn.Conv2d", "in_channels": 1})
    assert head_factory(None) is ConvHead

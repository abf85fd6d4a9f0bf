"""Severity encoder: starts as E0, the paper's σ head (init, lr multiplier), save/load, and the bundled encoders
giving exactly the outputs they gave before heads were modules."""

import json
from functools import partial

import pytest
import torch
from diffusers import VQModel

from flashdiff.diffusion import LatentDiffusion
from flashdiff.severity.encoder import ConvHead, SeverityEncoder
from tests.conftest import ROOT, build_tiny_ldm

torch.set_num_threads(1)

# (σ̂² of the three inputs, sum ẑ, sum |ẑ|) of the bundled encoders on torch.rand(3, 3, 32, 32) drawn from a generator
# seeded 0, computed by the code before the heads became modules (commit d49052c, flag-style config.json)
BUNDLED = {
    "toy_severity_blur": ([0.04222233220934868, 0.03622817620635033, 0.03781267628073692],
                          104.24825587428131, 2132.7192946264004),
    "toy_severity_inpaint": ([0.05703967809677124, 0.06370240449905396, 0.05859825760126114],
                             984.7085542280838, 3264.6896135294664),
}


@pytest.fixture(scope="module")
def ldm() -> LatentDiffusion:
    return build_tiny_ldm().requires_grad_(False).eval()


def tiny_vq_ldm() -> LatentDiffusion:
    """A random tiny VQModel (f = 2, 3 latent channels) wrapped without a score model."""
    torch.manual_seed(1)
    vq = VQModel(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                 block_out_channels=(8, 16), layers_per_block=1, latent_channels=3, norm_num_groups=4,
                 num_vq_embeddings=16, sample_size=32)
    return LatentDiffusion(vq, None, scale_factor=1.0).requires_grad_(False).eval()


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_encoder_starts_equal_to_E0_and_round_trips(kind, ldm, tmp_path):
    model = ldm if kind == "kl" else tiny_vq_ldm()
    enc = SeverityEncoder.from_latent_diffusion(model)
    y = torch.rand(3, 3, 32, 32)
    z_hat, sigma2_hat = enc(y)
    torch.testing.assert_close(z_hat, model.encode(y), rtol=0, atol=0)  # same latent units, scale included
    assert sigma2_hat.shape == (3,) and (sigma2_hat >= 0).all()
    assert all(p.requires_grad for p in enc.parameters())
    enc.save_pretrained(tmp_path / "enc")
    loaded = SeverityEncoder.from_pretrained(tmp_path / "enc")
    with torch.no_grad():
        for a, b in zip(enc(y), loaded(y), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    config = json.loads((tmp_path / "enc/config.json").read_text())
    assert config["autoencoder_class"] == type(model.autoencoder).__name__
    assert config["head"] == {"_target_": "flashdiff.severity.encoder.ConvHead", "lr_mult": 1.0}  # the paper's


def test_head_init_scale_and_lr_multiplier(ldm):
    enc = SeverityEncoder.from_latent_diffusion(ldm, partial(ConvHead, lr_mult=10.0))
    y = torch.rand(6, 3, 32, 32)
    enc.init_head_scale(y, 0.02)
    with torch.no_grad():
        assert enc(y)[1].mean().item() == pytest.approx(0.02, rel=1e-5)
    # Adam's first step moves every raw entry by lr, so the effective head weights move by lr_mult * lr
    before = (enc.head.lr_mult * enc.head.weight).detach().clone()
    opt = torch.optim.Adam([enc.head.weight], lr=1e-4)
    enc(y)[1].sum().backward()
    opt.step()
    step = (enc.head.lr_mult * enc.head.weight).detach() - before
    torch.testing.assert_close(step.abs(), torch.full_like(step, 10 * 1e-4), rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="lr_mult"):
        SeverityEncoder.from_latent_diffusion(ldm, {"_target_": "flashdiff.severity.encoder.ConvHead", "lr_mult": 0})


def test_mismatched_model_and_missing_folder_are_refused(ldm, tmp_path):
    enc = SeverityEncoder.from_latent_diffusion(ldm)
    with pytest.raises(ValueError, match="train the encoder from this model"):
        enc.check_matches(tiny_vq_ldm())
    with pytest.raises(FileNotFoundError, match="no severity encoder"):
        SeverityEncoder.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_encoders_load_from_their_flag_style_config_and_give_the_same_outputs(name):
    folder = ROOT / "models" / name
    assert "head" not in json.loads((folder / "config.json").read_text())  # written before heads were modules
    enc = SeverityEncoder.from_pretrained(folder)
    y = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z_hat, sigma2_hat = enc(y)
    sigma2, z_sum, z_abs = BUNDLED[name]
    torch.testing.assert_close(sigma2_hat, torch.tensor(sigma2), rtol=1e-5, atol=1e-8)
    assert z_hat.double().sum().item() == pytest.approx(z_sum, rel=1e-5)
    assert z_hat.double().abs().sum().item() == pytest.approx(z_abs, rel=1e-6)

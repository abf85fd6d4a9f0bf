"""Severity encoder: starts as E0, σ head init and lr, METHOD.md §2 loss, OA/Spearman, save/load, training."""

import json

import pytest
import scipy.stats
import torch
from diffusers import VQModel
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

import flashdiff.cli  # noqa: F401  (registers the ${flashdiff_root:} resolver)
from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion
from flashdiff.operators import GaussianBlur, Identity, Inpainting
from flashdiff.severity.encoder import (
    SeverityEncoder,
    error_variance,
    ordering_accuracy,
    rankdata,
    severity_loss,
    spearman,
)
from flashdiff.train.loop import LoopSettings
from flashdiff.train.severity import (
    SeverityObjective,
    initial_error_variance,
    resolve_lambda_sigma,
    train_severity_encoder,
)
from tests.conftest import ROOT, build_tiny_ldm

torch.set_num_threads(1)
BLUR = GaussianBlur(kernel_size=7, max_std=1.5)


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


def toy_batch(n: int = 4) -> dict:
    data = ToyImages("val")
    return {"x": torch.stack([data[k]["x"] for k in range(n)])}


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


def test_head_init_scale_and_lr_multiplier(ldm):
    enc = SeverityEncoder.from_latent_diffusion(ldm, head_lr_mult=10.0)
    y = torch.rand(6, 3, 32, 32)
    enc.init_head_scale(y, 0.02)
    with torch.no_grad():
        assert enc(y)[1].mean().item() == pytest.approx(0.02, rel=1e-5)
    # Adam's first step moves every raw entry by lr, so the effective head weights move by head_lr_mult * lr
    before = (enc.head_lr_mult * enc.head_weight).detach().clone()
    opt = torch.optim.Adam([enc.head_weight], lr=1e-4)
    enc(y)[1].sum().backward()
    opt.step()
    step = (enc.head_lr_mult * enc.head_weight).detach() - before
    torch.testing.assert_close(step.abs(), torch.full_like(step, 10 * 1e-4), rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="head_lr_mult"):
        SeverityEncoder.from_latent_diffusion(ldm, head_lr_mult=0)


def test_loss_terms_match_hand_computation():
    torch.manual_seed(0)
    z_hat, z0 = torch.randn(2, 2, 3, 3), torch.randn(2, 2, 3, 3)
    x_rec, x0 = torch.rand(2, 3, 4, 4) * 2 - 1, torch.rand(2, 3, 4, 4) * 2 - 1
    sigma2_hat = torch.tensor([0.5, 2.0])
    out = severity_loss(z_hat, sigma2_hat, z0, x_rec, x0, lambda_sigma=3.0, lambda_im=0.5)
    lat, sig, img = [], [], []
    for b in range(2):
        e = [float(v) for v in (z_hat[b] - z0[b]).flatten()]
        mu = sum(e) / 18
        var = sum((v - mu) ** 2 for v in e) / 17  # unbiased: d - 1
        lat.append(sum(v * v for v in e) / 18)
        sig.append((var - float(sigma2_hat[b])) ** 2)
        img.append(float(((x0[b] - x_rec[b]) ** 2).sum()) / 48)
    expected = {"latent": sum(lat) / 2, "sigma": sum(sig) / 2, "image": sum(img) / 2}
    expected["loss"] = expected["latent"] + 3.0 * expected["sigma"] + 0.5 * expected["image"]
    for k, v in expected.items():
        assert out[k].item() == pytest.approx(v, rel=1e-5), k
    assert error_variance(z_hat, z0)[0].item() == pytest.approx(
        torch.var((z_hat[0] - z0[0]).flatten(), unbiased=True).item())


def test_gradients_reach_encoder_and_head_but_not_the_frozen_model(ldm):
    enc = SeverityEncoder.from_latent_diffusion(ldm)
    objective = SeverityObjective(enc, ldm, BLUR, lambda_sigma=10.0, lambda_im=1.0).train()
    assert not objective.ldm.training and enc.training
    losses = objective(toy_batch())
    assert set(losses) == {"loss", "latent", "sigma", "image"} and losses["loss"].ndim == 0
    losses["loss"].backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None and not p.requires_grad for p in ldm.parameters())


def test_ordering_accuracy_on_hand_made_inputs():
    s = torch.linspace(0, 1, 10).expand(3, -1)
    assert ordering_accuracy(s, s * 5 + 1).tolist() == [1.0] * 3
    assert ordering_accuracy(s, -s).tolist() == [0.0] * 3
    assert ordering_accuracy(s[:1], torch.tensor([[0.0, 2, 1, 3, 4, 5, 6, 7, 8, 9]])).item() == pytest.approx(88 / 90)
    assert ordering_accuracy(s[:1], torch.ones(1, 10)).item() == 0.0  # ties in σ̂ are wrong (Def. 1, eq. 19)
    torch.manual_seed(0)
    assert ordering_accuracy(s[:1].expand(4000, -1), torch.rand(4000, 10)).mean().item() == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="N, n"):
        ordering_accuracy(s[0], s[0])


def test_spearman_matches_scipy_with_ties():
    torch.manual_seed(0)
    a, b = torch.randint(0, 5, (40,)).float(), torch.randn(40)
    b = b + 0.5 * a
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-10)
    torch.testing.assert_close(rankdata(a).numpy(), scipy.stats.rankdata(a.numpy()), check_dtype=False)
    assert spearman(b, b.exp()) == pytest.approx(1.0)
    assert spearman(torch.ones(5), torch.arange(5.0)) != spearman(torch.ones(5), torch.arange(5.0))  # NaN


def test_mismatched_model_operator_and_lambda_are_refused(ldm, tmp_path):
    enc = SeverityEncoder.from_latent_diffusion(ldm)
    with pytest.raises(ValueError, match="train the encoder from this model"):
        enc.check_matches(tiny_vq_ldm())
    settings = LoopSettings(steps=1, batch_size=2)
    with pytest.raises(ValueError, match="severity varies"):
        train_severity_encoder(ldm, Identity(), settings, ToyImages("train", length=4), ToyImages("val"),
                               tmp_path / "m", tmp_path / "w")
    with pytest.raises(ValueError, match="'auto'"):
        resolve_lambda_sigma("big", 0.1)
    assert resolve_lambda_sigma("auto", 0.1) == pytest.approx(100.0) and resolve_lambda_sigma(10, 0.1) == 10.0
    with pytest.raises(FileNotFoundError, match="no severity encoder"):
        SeverityEncoder.from_pretrained(tmp_path)


def test_train_severity_encoder_smoke(ldm, tmp_path):
    op = Inpainting(max_missing=0.8)
    train_set, val_set = ToyImages("train", length=16), ToyImages("val")
    settings = LoopSettings(steps=3, batch_size=4, lr=1e-4, warmup_steps=1, checkpoint_every=2)
    result = train_severity_encoder(ldm, op, settings, train_set, val_set, tmp_path / "enc", tmp_path / "w",
                                    lambda_sigma="auto", lambda_im=1.0, head_lr_mult=10, test_set=ToyImages("test"),
                                    max_val_images=4)
    assert result["lambda_sigma"] == pytest.approx(1 / result["v0"] ** 2)
    for split in ("init_val", "val", "test"):
        for key in ("spearman", "spearman_true", "ordering_accuracy", "ordering_accuracy_true", "loss", "latent",
                    "sigma", "image"):
            assert f"{split}_{key}" in result
    assert 0.0 <= result["val_ordering_accuracy"] <= 1.0
    record = json.loads((tmp_path / "enc/training.json").read_text())
    assert record["steps"] == 3 and record["val_loss"] == pytest.approx(result["val_loss"])
    loaded = SeverityEncoder.from_pretrained(tmp_path / "enc")
    v0, y = initial_error_variance(loaded, ldm, op, train_set, 4)
    assert torch.isfinite(loaded(y)[1]).all() and v0 > 0


@pytest.mark.parametrize("name", ["severity_blur", "severity_inpaint"])
def test_severity_configs_compose(name, tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="training", overrides=[f"train={name}", f"hydra.run.dir={tmp_path}"],
                      return_hydra_config=True)
    op = instantiate(cfg.train.operator)
    assert cfg.train.name == "severity" and op.train_severity_range == (0.0, 1.0)
    assert cfg.train.lambda_sigma == "auto" or cfg.train.lambda_sigma > 0
    assert cfg.train.output_dir.endswith(name.replace("severity", "toy_severity"))
    assert LoopSettings(**cfg.train.loop).steps >= 1000


def test_detached_target_keeps_the_variance_term_off_z_hat():
    z0 = torch.randn(3, 4, 4, 4)
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    for detach, moves in ((False, True), (True, False)):
        z_hat = (z0 + 0.3 * torch.randn_like(z0)).requires_grad_(True)
        terms = severity_loss(z_hat, torch.full((3,), 0.5), z0, x, x, lambda_sigma=1.0, lambda_im=0.0,
                              detach_target=detach)
        assert terms["sigma"].requires_grad == moves
        if moves:
            (grad,) = torch.autograd.grad(terms["sigma"], z_hat)
            assert grad.abs().sum() > 0


def test_head_options_start_as_the_paper_head_and_stop_grad_keeps_sigma_off_the_encoder():
    ldm = build_tiny_ldm()
    y = torch.rand(2, 3, 32, 32)
    plain = SeverityEncoder.from_latent_diffusion(ldm)
    ctx = SeverityEncoder.from_latent_diffusion(ldm, head_context=8, head_stop_grad=True)
    ctx.load_state_dict(plain.state_dict(), strict=False)
    torch.testing.assert_close(ctx(y)[1], plain(y)[1])  # the zero-initialised context branch changes nothing
    ctx(y)[1].sum().backward()
    assert all(p.grad is None for p in ctx.encoder.parameters())
    assert ctx.head_weight.grad is not None and ctx.context[0].weight.grad is not None


def test_feature_head_starts_as_the_paper_head_reads_encoder_features_and_round_trips(tmp_path):
    ldm = build_tiny_ldm()
    y = torch.rand(2, 3, 32, 32)
    plain = SeverityEncoder.from_latent_diffusion(ldm)
    feat = SeverityEncoder.from_latent_diffusion(ldm, head_features=True)
    feat.load_state_dict(plain.state_dict(), strict=False)
    torch.testing.assert_close(feat(y)[1], plain(y)[1])  # zero-initialised feature weights: the paper's head
    feat(y)[1].sum().backward()
    assert feat.feature_weight.grad.abs().sum() > 0  # the head sees the features conv_out reads
    assert feat.encoder.conv_in.weight.grad.abs().sum() > 0  # and sigma trains the whole encoder
    with torch.no_grad():
        feat.feature_weight.normal_()
    feat.save_pretrained(tmp_path)
    loaded = SeverityEncoder.from_pretrained(tmp_path)
    assert loaded.head_features
    torch.testing.assert_close(loaded(y)[1], feat(y)[1].detach())
    assert not torch.allclose(loaded(y)[1], plain(y)[1].detach())


def test_energy_head_starts_constant_learns_fast_and_round_trips(tmp_path):
    ldm = build_tiny_ldm()
    y = torch.rand(3, 3, 32, 32)
    enc = SeverityEncoder.from_latent_diffusion(ldm, head_energy=8, head_lr_mult=10.0)
    assert not hasattr(enc, "head_weight")  # the 1x1 head is replaced, not left without gradients
    assert enc.init_head_scale(y, 0.05) == 1.0
    torch.testing.assert_close(enc(y)[1], torch.full((3,), 0.05))  # constant v0 before training
    enc(y)[1].sum().backward()
    last = enc.energy_head.mlp[-1].parametrizations.weight.original
    assert last.grad.abs().sum() > 0 and enc.encoder.conv_in.weight.grad.abs().sum() == 0  # zero last layer first
    torch.testing.assert_close(enc.energy_head.mlp[-1].weight, 10.0 * last)  # stored raw, used × head_lr_mult
    with torch.no_grad():
        last.normal_()
    assert enc(y)[1].std() > 0 and (enc(y)[1] > 0).all()
    enc.save_pretrained(tmp_path)
    loaded = SeverityEncoder.from_pretrained(tmp_path)
    assert loaded.head_energy == 8
    torch.testing.assert_close(loaded(y)[1], enc(y)[1].detach())
    with pytest.raises(ValueError, match="head_energy"):
        SeverityEncoder.from_latent_diffusion(ldm, head_energy=8, head_context=4)


def test_energy_head_early_branch_reads_the_first_conv_and_round_trips(tmp_path):
    ldm = build_tiny_ldm()
    y = torch.rand(3, 3, 32, 32)
    enc = SeverityEncoder.from_latent_diffusion(ldm, head_energy=8, head_energy_early=True)
    enc.init_head_scale(y, 0.05)
    torch.testing.assert_close(enc(y)[1], torch.full((3,), 0.05))  # still a constant v0 before training
    with torch.no_grad():
        enc.energy_head.mlp[-1].parametrizations.weight.original.normal_()
    seen = {}
    hooks = [enc.encoder.conv_in.register_forward_hook(lambda m, a, out: seen.update(early=out)),
             enc.encoder.conv_out.register_forward_pre_hook(lambda m, a: seen.update(features=a[0]))]
    sigma2_hat = enc(y)[1]
    for hook in hooks:
        hook.remove()
    assert seen["early"].shape[-2:] == y.shape[-2:]  # full resolution, unlike the last hidden features
    torch.testing.assert_close(sigma2_hat, enc.energy_head(seen["features"], seen["early"]))
    sigma2_hat.sum().backward()
    assert enc.energy_head.early[0].parametrizations.weight.original.grad.abs().sum() > 0
    assert enc.energy_head.mlp[0].in_features == 2 * 8  # both sets of log energies
    enc.save_pretrained(tmp_path)
    loaded = SeverityEncoder.from_pretrained(tmp_path)
    assert loaded.head_energy_early
    torch.testing.assert_close(loaded(y)[1], sigma2_hat.detach())
    with pytest.raises(ValueError, match="head_energy_early"):
        SeverityEncoder.from_latent_diffusion(ldm, head_energy_early=True)

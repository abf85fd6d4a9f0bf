"""The bundled toy models: present, loadable, and as good as the README says.

They are trained by ``make toy-models`` on the world of ``conf/dataset/toy.yaml`` (photos downscaled 2×, val on the
16 px grid); ``toy_split`` gives its splits.
"""

import json

import pytest
import torch

from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion
from flashdiff.toy.evaluate_world import autoencoder_quality, operator, toy_split
from tests.conftest import ROOT

MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def toy_ldm():
    return LatentDiffusion.from_pretrained(MODELS / "toy_ldm")


def test_toy_models_are_small_safetensors_with_training_records():
    files = [p for p in (MODELS / "toy_ldm").rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.parent.name for p in weights} == {"vae", "unet"}
    assert sum(p.stat().st_size for p in weights) <= 20 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".ckpt", ".pkl")]
    for part in ("vae", "unet"):
        record = json.loads((MODELS / "toy_ldm" / part / "training.json").read_text())
        assert record["steps"] == record["settings"]["steps"] and record["train_seconds"] > 0


def test_toy_autoencoder_reaches_28_db_on_the_test_split(toy_ldm):
    with torch.no_grad():
        quality = autoencoder_quality(toy_ldm, toy_split("test"))
    assert quality["n"] == 124 and quality["psnr"] >= 28.0  # every 2x test crop


def test_autoencoder_quality_scores_the_native_world_which_is_easier(toy_ldm):
    with torch.no_grad():
        bundled = autoencoder_quality(toy_ldm, toy_split("val"))
        native = autoencoder_quality(toy_ldm, ToyImages("val", downscale=1))
    assert (bundled["n"], native["n"]) == (104, 126)  # chelsea: every crop of each grid
    assert native["psnr"] > bundled["psnr"] + 0.5  # less structure per crop (bench/toy_autoencoders.py records it)


def test_blur_severity_encoder_meets_its_bar_on_the_val_split(toy_ldm):
    """Issue 3's bar, on the val split: Spearman(σ̂², t) ≥ 0.6 and mean ordering accuracy ≥ 0.9."""
    from flashdiff.severity import SeverityEncoder
    from flashdiff.severity.loss import LossWeights
    from flashdiff.train.severity import validate_severity

    folder = MODELS / "toy_severity_blur"
    meta = json.loads((folder / "config.json").read_text())["metadata"]
    op = operator("toy_blur_varying")  # the operator of its preset (train=severity_blur_bundled)
    with torch.no_grad():
        stats = validate_severity(SeverityEncoder.from_pretrained(folder), toy_ldm, op, toy_split("val"),
                                  loss=LossWeights(meta["lambda_sigma"], meta["lambda_im"]))
    assert stats["n_images"] == 100 and stats["spearman"] >= 0.6 and stats["ordering_accuracy"] >= 0.9


def test_toy_ldm_uses_the_ldm_schedule_and_its_latents_are_unit_scale(toy_ldm):
    sched = json.loads((MODELS / "toy_ldm" / "scheduler" / "scheduler_config.json").read_text())
    assert (sched["beta_start"], sched["beta_end"], sched["num_train_timesteps"]) == (0.0015, 0.0195, 1000)
    assert sched["beta_schedule"] == "scaled_linear"
    data = toy_split("train")
    with torch.no_grad():
        z = toy_ldm.encode(torch.stack([data[k]["x"] for k in range(256)]))
    assert z.shape[1:] == (4, 16, 16) and 0.7 < z.std().item() < 1.3


def test_bundled_toy_swinir_restores_varying_blur():
    """The supervised comparison (solver=swinir) is trained: it beats the measurement it restores, per image."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from flashdiff.metrics.image import psnr
    from flashdiff.solvers.swinir import SwinIRRestorer

    net = SwinIRRestorer.from_pretrained(MODELS / "toy_swinir_blur").eval()
    data = toy_split("test")
    x = torch.stack([data[k]["x"] for k in range(16)])
    op = instantiate(OmegaConf.load(ROOT / "conf" / "operator" / "toy_blur_varying.yaml"))  # what it was trained on
    seeds = torch.arange(16)
    y = op.measure(x, op.draw(seeds, tuple(x.shape)), seeds)
    with torch.no_grad():
        restored = net(y).clamp(0, 1)
    gain = psnr(restored, x) - psnr(y.clamp(0, 1), x)
    assert gain.mean() > 2.0 and (gain > 0).float().mean() >= 0.9


def test_bundled_toy_pixel_ddpm_predicts_the_noise():
    """Pixel DPS's model (solver=dps, +experiment=toy_varblur_dps) is trained: on test crops its ε-prediction error
    is a fraction of the noise's own variance (1) at low, middle and high noise levels."""
    from flashdiff.diffusion import PixelDiffusion

    model = PixelDiffusion.from_pretrained(MODELS / "toy_pixel_ddpm")
    assert model.latent_shape == (3, 32, 32) and model.schedule.num_steps == 1000
    data = toy_split("test")
    x0 = model.encode(torch.stack([data[k]["x"] for k in range(32)]))
    gen = torch.Generator().manual_seed(0)
    for t, bound in ((50, 0.3), (500, 0.03), (900, 0.01)):  # measured 0.14, 0.006, 0.002; random init 1.1
        a = model.scheduler.alphas_cumprod[t]
        eps = torch.randn(x0.shape, generator=gen)
        with torch.no_grad():
            pred = model.unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).sample
        assert (pred - eps).pow(2).mean() < bound, t


def test_bundled_toy_flow_prior_is_a_trained_rectified_flow():
    """model=toy_flow: the preset loads the flow prior on toy_ldm's autoencoder, and its velocity is learned: on val
    latents its loss is far below the trivial predictor's E||ε - z0||² (≈ 2 for unit-scale latents)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf" / "model" / "toy_flow.yaml")
    cfg.path, cfg.autoencoder_path = str(MODELS / "toy_flow"), str(MODELS / "toy_ldm")
    flow = instantiate(cfg)
    record = json.loads((MODELS / "toy_flow" / "unet" / "training.json").read_text())
    assert record["steps"] == 2000 and record["parameters"] == 3735548  # the toy UNet's size and budget
    assert flow.prediction_type == "flow" and flow.schedule.path == "flow" and flow.schedule.spacing == "linspace"
    data = toy_split("val")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z0 = flow.encode(torch.stack([data[k]["x"] for k in range(0, 104, 4)]))
        t = torch.rand(z0.shape[0], generator=g).view(-1, 1, 1, 1)
        noise = torch.randn(z0.shape, generator=g)
        u = flow.unet(((1 - t) * z0 + t * noise), 1000 * t.flatten()).sample
        loss, trivial = ((u - (noise - z0)) ** 2).mean().item(), ((noise - z0) ** 2).mean().item()
    assert loss < 0.35 * trivial, (loss, trivial)

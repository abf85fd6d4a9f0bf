"""The bundled toy models: present, loadable, and as good as the README says."""

import json

import pytest
import torch

from flashdiff.diffusion import LatentDiffusion
from flashdiff.train.evaluate_toy import autoencoder_quality
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
        quality = autoencoder_quality(toy_ldm, "test")
    assert quality["n"] >= 64 and quality["psnr"] >= 28.0


def test_toy_ldm_uses_the_ldm_schedule_and_its_latents_are_unit_scale(toy_ldm):
    sched = json.loads((MODELS / "toy_ldm" / "scheduler" / "scheduler_config.json").read_text())
    assert (sched["beta_start"], sched["beta_end"], sched["num_train_timesteps"]) == (0.0015, 0.0195, 1000)
    assert sched["beta_schedule"] == "scaled_linear"
    from flashdiff.data import ToyImages

    data = ToyImages("train", length=256)
    with torch.no_grad():
        z = toy_ldm.encode(torch.stack([data[k]["x"] for k in range(256)]))
    assert z.shape[1:] == (4, 16, 16) and 0.7 < z.std().item() < 1.3

"""Training of the severity encoder: the objective's gradients, a tiny run end to end, the toy presets."""

import json
from functools import partial

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

import flashdiff.paths  # noqa: F401  (registers the ${flashdiff_root:} resolver)
from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion
from flashdiff.operators import GaussianBlur, Identity, Inpainting
from flashdiff.severity.encoder import ConvHead, SeverityEncoder
from flashdiff.severity.loss import LossWeights
from flashdiff.train.loop import LoopSettings, TrainingJob
from flashdiff.train.severity import SeverityObjective, initial_error_variance, train_severity_encoder
from tests.conftest import ROOT, build_tiny_ldm

torch.set_num_threads(1)
BLUR = GaussianBlur(kernel_size=7, max_std=1.5)


@pytest.fixture(scope="module")
def ldm() -> LatentDiffusion:
    return build_tiny_ldm().requires_grad_(False).eval()


def test_gradients_reach_encoder_and_head_but_not_the_frozen_model(ldm):
    enc = SeverityEncoder.from_latent_diffusion(ldm)
    objective = SeverityObjective(enc, ldm, BLUR, LossWeights(10.0, 1.0)).train()
    assert not objective.ldm.training and enc.training
    data = ToyImages("val")
    losses = objective({"x": torch.stack([data[k]["x"] for k in range(4)])})
    assert set(losses) == {"loss", "latent", "sigma", "image"} and losses["loss"].ndim == 0
    losses["loss"].backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None and not p.requires_grad for p in ldm.parameters())


def test_an_operator_without_a_severity_range_is_refused(ldm, tmp_path):
    job = TrainingJob(ToyImages("train", length=4), ToyImages("val"), tmp_path / "m", tmp_path / "w")
    with pytest.raises(ValueError, match="severity varies"):
        train_severity_encoder(job, ldm, operator=Identity(), loss=LossWeights(), loop=LoopSettings(steps=1))


def test_train_severity_encoder_smoke(ldm, tmp_path):
    op = Inpainting(max_missing=0.8)
    train_set = ToyImages("train", length=16)
    loop = LoopSettings(steps=3, batch_size=4, lr=1e-4, warmup_steps=1, checkpoint_every=2)
    job = TrainingJob(train_set, ToyImages("val"), tmp_path / "enc", tmp_path / "w", test=lambda: ToyImages("test"))
    result = train_severity_encoder(job, ldm, operator=op, loss=LossWeights("auto"), loop=loop,
                                    head=partial(ConvHead, lr_mult=10), max_val_images=4)
    assert result["lambda_sigma"] == pytest.approx(1 / result["v0"] ** 2)
    assert result["head"] == {"_target_": "flashdiff.severity.encoder.ConvHead", "lr_mult": 10.0}
    for split in ("init_val", "val", "test"):
        for key in ("spearman", "spearman_true", "ordering_accuracy", "ordering_accuracy_true", "loss", "latent",
                    "sigma", "image"):
            assert f"{split}_{key}" in result
    assert 0.0 <= result["val_ordering_accuracy"] <= 1.0
    record = json.loads((tmp_path / "enc/training.json").read_text())
    assert record["steps"] == 3 and record["val_loss"] == pytest.approx(result["val_loss"])
    assert record["arch"]["head"] == result["head"]
    loaded = SeverityEncoder.from_pretrained(tmp_path / "enc")
    v0, y = initial_error_variance(loaded, ldm, op, train_set, 4)
    assert torch.isfinite(loaded(y)[1]).all() and v0 > 0


@pytest.mark.parametrize("name", ["severity_blur", "severity_blur_bundled", "severity_inpaint"])
def test_toy_severity_presets_compose(name, tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="training", overrides=[f"train={name}", f"hydra.run.dir={tmp_path}"],
                      return_hydra_config=True)
    op = instantiate(cfg.train.operator)
    assert cfg.train._target_ == "flashdiff.train.severity.train_severity_encoder"
    assert op.train_severity_range == (0.0, 1.0)
    loss = instantiate(cfg.train.loss)
    assert loss.lambda_sigma == "auto" or loss.lambda_sigma > 0
    assert cfg.train.output_dir.endswith(name.replace("severity", "toy_severity").removesuffix("_bundled"))
    assert instantiate(cfg.train.loop).steps >= 1000


def test_the_bundled_blur_preset_is_the_recipe_of_the_bundled_encoder(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="training", overrides=["train=severity_blur_bundled", f"hydra.run.dir={tmp_path}"])
    saved = json.loads((ROOT / "models/toy_severity_blur/config.json").read_text())
    head = {k: v for k, v in cfg.train.head.items() if k != "_partial_"}
    assert head == {"_target_": "flashdiff.severity.heads.EnergyHead", "width": saved["head_energy"],
                    "early": saved["head_energy_early"], "lr_mult": saved["head_lr_mult"]}
    assert cfg.train.loss.lambda_sigma == saved["metadata"]["lambda_sigma"]
    assert (cfg.train.loop.lr, cfg.train.loop.steps) == (1e-5, 1000)
    assert cfg.dataset.train_min_detail == 0.07 and list(cfg.dataset.train_extra) == [
        "brick", "grass", "gravel", "camera", "coins", "moon"]

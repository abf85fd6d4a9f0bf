"""``python -m flashdiff.toy.evaluate_severity``: the training validation's statistics for a saved encoder."""

import json
import sys

import pytest
import torch

from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion
from flashdiff.operators import GaussianBlur
from flashdiff.severity import SeverityEncoder
from flashdiff.severity.loss import LossWeights
from flashdiff.toy import evaluate_severity
from flashdiff.train.severity import validate_severity
from tests.conftest import ROOT

torch.set_num_threads(1)


def test_scores_the_bundled_blur_encoder_on_a_denser_downscaled_val_grid(tmp_path, monkeypatch, capsys):
    encoder, out = ROOT / "models" / "toy_severity_blur", tmp_path / "scores.jsonl"
    monkeypatch.setattr(sys, "argv", ["evaluate_severity", "--encoder", str(encoder), "--downscale", "2",
                                      "--val-stride", "16", "--max-images", "3", "--out", str(out)])
    evaluate_severity.main()
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["split"] for row in printed] == ["val", "test"]
    assert [json.loads(line) for line in out.read_text().splitlines()] == printed  # appended as printed
    val = printed[0]
    assert val["n_images"] == 3 and val["downscale"] == 2 and val["val_stride"] == 16 and val["commit"]
    # the same numbers as training's validation on those crops (the preset's operator, the encoder's λσ)
    meta = json.loads((encoder / "config.json").read_text())["metadata"]
    direct = validate_severity(SeverityEncoder.from_pretrained(encoder).eval(),
                               LatentDiffusion.from_pretrained(ROOT / "models" / "toy_ldm", unet_subfolder=None),
                               GaussianBlur(kernel_size=19, max_std=3.0), ToyImages("val", downscale=2, val_stride=16),
                               loss=LossWeights(meta["lambda_sigma"], meta["lambda_im"]), max_images=3)
    assert val["lambda_sigma"] == meta["lambda_sigma"]
    for key in ("ordering_accuracy", "ordering_accuracy_true", "loss", "latent", "sigma2_hat_mean"):
        assert val[key] == pytest.approx(direct[key], rel=1e-5)


def test_a_missing_or_other_preset_is_named(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["evaluate_severity", "--encoder", "x", "--preset", "nope"])
    with pytest.raises(SystemExit, match="--preset nope"):
        evaluate_severity.main()
    with pytest.raises(SystemExit, match="--preset swinir: not a severity-encoder preset"):
        evaluate_severity.preset_settings("swinir")


def test_the_preset_gives_the_operator_and_the_loss_weights():
    op, loss = evaluate_severity.preset_settings("severity_inpaint")
    assert type(op).__name__ == "Inpainting" and loss == LossWeights(1, 1.0, True)


def test_loss_weights_come_from_the_encoder_else_the_preset():
    preset = LossWeights("auto", 1.0)
    assert evaluate_severity.loss_weights({"lambda_sigma": 30.0, "lambda_im": 0.5}, preset) == LossWeights(30.0, 0.5)
    assert evaluate_severity.loss_weights({"v0": 0.1}, preset).lambda_sigma == pytest.approx(100.0)  # 1 / v0²
    with pytest.raises(SystemExit, match="numeric lambda_sigma"):
        evaluate_severity.loss_weights({}, preset)  # e.g. a converted checkpoint with an `auto` preset

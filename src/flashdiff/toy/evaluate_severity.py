"""``python -m flashdiff.toy.evaluate_severity``: score a saved severity encoder on the toy val and test splits.

The statistics of training's validation (Spearman of σ̂² with the severity, ordering accuracy over 10 severities,
the same two for the true latent error variance, every loss term) for any encoder folder, on the bundled toy world
(``conf/dataset/toy.yaml``) or another (``--downscale``, ``--val-stride``), e.g. the bundled blur encoder, then an
encoder of the native world (with its own autoencoder)::

    python -m flashdiff.toy.evaluate_severity --encoder models/toy_severity_blur
    python -m flashdiff.toy.evaluate_severity --encoder DIR --model DIR_LDM --downscale 1

The operator comes from the training preset (``--preset``, a conf/train file), the loss weights from the encoder's
``config.json`` (else the preset). Prints one json line per split; ``--out FILE`` also appends them, with date,
commit and machine, to a json-lines file.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion
from flashdiff.paths import CONFIG_DIR, ROOT
from flashdiff.records import provenance
from flashdiff.severity import SeverityEncoder
from flashdiff.severity.loss import LossWeights
from flashdiff.toy.evaluate_world import toy_world
from flashdiff.train.severity import LOSS_TERMS, validate_severity
from flashdiff.types import Operator
from flashdiff.weights import CONFIG_NAME

STATISTICS = ("spearman", "ordering_accuracy", "spearman_true", "ordering_accuracy_true", *LOSS_TERMS,
              "sigma2_hat_mean", "error_variance_mean", "n_images")


def loss_weights(saved: dict, preset: LossWeights) -> LossWeights:
    """λσ and λim the encoder was trained with (its saved metadata), else the preset's (``auto`` with its ``v0``)."""
    if "lambda_sigma" in saved:
        lambda_sigma = saved["lambda_sigma"]
    elif preset.lambda_sigma != "auto" or "v0" in saved:
        lambda_sigma = preset.resolve(saved.get("v0", 1.0)).lambda_sigma
    else:
        raise SystemExit(f"the encoder's {CONFIG_NAME} has neither lambda_sigma nor v0, and the preset's lambda_sigma "
                         "is auto: pick a --preset with a numeric lambda_sigma")
    return LossWeights(float(lambda_sigma), float(saved.get("lambda_im", preset.lambda_im)))


def evaluate_severity(encoder: SeverityEncoder, model: LatentDiffusion, op: Operator, splits: dict[str, Dataset],
                      loss: LossWeights, max_images: int | None = 100) -> dict[str, dict[str, Any]]:
    """``STATISTICS`` of training's validation (``validate_severity``) of ``encoder`` on each split, by split name."""
    out = {}
    for name, data in splits.items():
        stats = validate_severity(encoder, model, op, data, loss=loss, max_images=max_images)
        out[name] = {k: stats[k] for k in STATISTICS}
    return out


def preset_settings(name: str) -> tuple[Operator, LossWeights]:
    """The operator and the loss weights of the training preset ``conf/train/<name>.yaml``."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    if not (Path(CONFIG_DIR) / "train" / f"{name}.yaml").is_file():
        raise SystemExit(f"--preset {name}: no file {Path(CONFIG_DIR) / 'train' / f'{name}.yaml'}")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        train = compose("training", [f"train={name}"]).train
    if "loss" not in train:
        raise SystemExit(f"--preset {name}: not a severity-encoder preset (no train.loss)")
    return instantiate(train.operator), instantiate(train.loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="a severity encoder folder (config.json, model.safetensors)")
    parser.add_argument("--model", default=str(ROOT / "models" / "toy_ldm"), help="the LDM folder it was trained from")
    parser.add_argument("--preset", default="severity_blur", help="conf/train preset: operator and loss weights")
    parser.add_argument("--downscale", type=int, default=None,
                        help="dataset.downscale of the toy world (default: conf/dataset/toy.yaml's, with its val grid)")
    parser.add_argument("--val-stride", type=int, default=None,
                        help="dataset.val_stride (default: the bundled world's at its downscale, else non-overlapping)")
    parser.add_argument("--max-images", type=int, default=100, help="crops per split")
    parser.add_argument("--out", default=None, help="json-lines file to append the results to")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    op, preset_loss = preset_settings(args.preset)
    encoder = SeverityEncoder.from_pretrained(args.encoder)  # names a missing or broken folder
    loss = loss_weights(json.loads((Path(args.encoder) / CONFIG_NAME).read_text()).get("metadata", {}), preset_loss)
    model = LatentDiffusion.from_pretrained(args.model, unet_subfolder=None)
    args.downscale, args.val_stride = toy_world(args.downscale, args.val_stride)
    splits = {s: ToyImages(s, downscale=args.downscale, val_stride=args.val_stride) for s in ("val", "test")}
    for split, stats in evaluate_severity(encoder, model, op, splits, loss, args.max_images).items():
        row = provenance(ROOT) | {
            "encoder": args.encoder, "model": args.model, "preset": args.preset, "downscale": args.downscale,
            "val_stride": args.val_stride, "split": split, "lambda_sigma": loss.lambda_sigma,
            "lambda_im": loss.lambda_im} | stats
        print(json.dumps(row))
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: reconstruction quality of toy autoencoders on the toy val and test crops, at any ``dataset.downscale``.

The toy world's bar (issue 2) is ``D0(E0(x))`` at >= 28 dB PSNR on the test crops. A harder world (photos downscaled
2x, where blur is easier to read from a crop) needs an autoencoder that reaches it there too; this scores candidate
autoencoders (folders written by ``python -m flashdiff.train train=autoencoder``: ``<folder>/vae``) on every crop of
each split and appends one json line per folder and scale, with date, commit and machine, to ``--out``.

Usage: .venv/bin/python bench/toy_autoencoders.py models/toy_ldm outputs/models_x2/ae_mix [--downscales 1 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion
from flashdiff.paths import ROOT
from flashdiff.records import provenance
from flashdiff.toy.evaluate_world import autoencoder_quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="LDM folders holding vae/ (e.g. models/toy_ldm)")
    parser.add_argument("--downscales", type=int, nargs="+", default=[1, 2], help="dataset.downscale values")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "toy_autoencoders.jsonl"))
    args = parser.parse_args()
    for folder in args.folders:
        if not (Path(folder) / "vae").is_dir():
            raise SystemExit(f"{folder}: no vae/ folder there; pass the output_dir of train=autoencoder")
        model = LatentDiffusion.from_pretrained(folder, unet_subfolder=None)
        config, training = dict(model.autoencoder.config), Path(folder) / "vae" / "training.json"
        about = {"folder": str(folder), "block_out_channels": list(config["block_out_channels"]),
                 "latent_channels": config["latent_channels"],
                 "parameters": sum(p.numel() for p in model.autoencoder.parameters()),
                 "training": json.loads(training.read_text()) if training.exists() else None}
        for downscale in args.downscales:
            row = provenance(ROOT) | about | {"downscale": downscale}
            row |= {s: autoencoder_quality(model, ToyImages(s, downscale=downscale)) for s in ("val", "test")}
            print(json.dumps(row))
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""python -m flashdiff.convert {ldm,severity} ...: original checkpoints -> folders flashdiff loads."""

from __future__ import annotations

import argparse
import logging

import yaml

from flashdiff.console import ArgumentParser, run
from flashdiff.convert.checkpoint import UnsafeCheckpointError
from flashdiff.convert.ldm import convert_ldm
from flashdiff.convert.mapping import ConversionError
from flashdiff.convert.severity import convert_severity_encoder
from flashdiff.errors import InputError

EXAMPLES = """examples:
  python -m flashdiff.convert ldm --ckpt ldm/models/ldm/lsun_beds256/model.ckpt --out models/ldm_lsun_bedrooms256
  python -m flashdiff.convert severity --ckpt checkpoints/sevenc_gblur_lsun_bedroom.ckpt \\
      --out models/sevenc_gblur_lsun_bedroom
"""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m flashdiff.convert", description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", required=True)
    ldm = sub.add_parser("ldm", help="latent-diffusion model.ckpt + config.yaml -> vqvae/ unet/ scheduler/")
    ldm.add_argument("--ckpt", required=True, help="the LDM's model.ckpt")
    ldm.add_argument("--config", help="its config.yaml (default: the one beside the ckpt, else the paper's "
                                      "LDM-VQ-4 config shared by the CelebA-HQ, FFHQ and LSUN-bedrooms LDMs)")
    ldm.add_argument("--out", required=True, help="output folder; use it as model.path=<out>")
    ldm.add_argument("--no-ema", action="store_true", help="convert the raw UNet weights even if EMA ones exist")
    sev = sub.add_parser("severity", help="the authors' severity-encoder .ckpt -> a severity_encoder folder")
    sev.add_argument("--ckpt", required=True, help="sevenc_<task>_<dataset>.ckpt (full Lightning or _light)")
    sev.add_argument("--out", required=True, help="output folder; use it as severity_encoder=<out>")
    sev.add_argument("--ldm-config", help="config.yaml of the LDM it was trained from (default: the "
                                          "checkpoint's own model_config, else the paper's VQ-f4)")
    sev.add_argument("--scale-factor", type=float, default=1.0, help="the LDM's latent scale factor (paper: 1.0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Convert one checkpoint; a file that cannot be read (or does not fit) is an ``InputError`` naming it."""
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.kind == "ldm":
            out = convert_ldm(args.ckpt, args.out, config=args.config, use_ema=not args.no_ema)
            print(f"converted: {out}; run with model=ldm_lsun_bedrooms256 model.path={out} (any converted LDM)")
        else:
            out = convert_severity_encoder(args.ckpt, args.out, ldm_config=args.ldm_config,
                                           scale_factor=args.scale_factor)
            print(f"converted: {out}; run with severity_encoder={out}")
    except (ConversionError, UnsafeCheckpointError, OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        text = " ".join(str(err).split("\n"))
        files = [f for f in (args.ckpt, getattr(args, "config", None), getattr(args, "ldm_config", None)) if f]
        raise InputError(text if any(f in text for f in files) else f"{args.ckpt}: {text}") from err
    return 0


if __name__ == "__main__":
    run(main, "flashdiff.convert")

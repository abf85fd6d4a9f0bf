"""``python -m flashdiff.toy.evaluate_world``: measure the bundled toy world and draw samples of its LDM.

Records in ``docs/toy_world.json`` (and prints as markdown): the autoencoder's reconstruction PSNR/SSIM per split,
the measurement PSNR across the toy blur range and for inpainting, the training record of each model, and a grid
of DDPM samples next to real test crops (``docs/toy_ldm_samples.png``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torchvision.utils import make_grid, save_image

from flashdiff.data import ToyImages
from flashdiff.data.seeding import generators as sample_generators
from flashdiff.diffusion import LatentDiffusion
from flashdiff.engine import sample
from flashdiff.metrics import psnr, ssim
from flashdiff.paths import CONFIG_DIR, ROOT
from flashdiff.records import provenance
from flashdiff.solvers.ddpm import ddpm
from flashdiff.train.severity import fixed_severity
from flashdiff.types import Operator

log = logging.getLogger(__name__)


def toy_world(downscale: int | None = None, val_stride: int | None = None) -> tuple[int, int | None]:
    """``(downscale, val_stride)``: the bundled toy world's, as ``conf/dataset/toy.yaml`` sets them, where not given.

    The world's val grid goes with its downscale only: another ``downscale`` keeps ``val_stride`` as given.
    """
    world = OmegaConf.load(Path(CONFIG_DIR) / "dataset" / "toy.yaml")
    if downscale is None or downscale == int(world.downscale):
        return int(world.downscale), world.val_stride if val_stride is None else val_stride
    return downscale, val_stride


def toy_split(split: str, downscale: int | None = None, val_stride: int | None = None) -> ToyImages:
    """A split of the bundled toy world, or of the world at another ``downscale`` / ``val_stride`` (``toy_world``)."""
    downscale, val_stride = toy_world(downscale, val_stride)
    return ToyImages(split, downscale=downscale, val_stride=val_stride)


@torch.no_grad()
def autoencoder_quality(model: LatentDiffusion, data: ToyImages) -> dict[str, float]:
    """Mean PSNR/SSIM of ``D0(E0(x))`` over every crop of a toy split."""
    x = torch.stack([data[k]["x"] for k in range(len(data))])
    x_hat = torch.cat([model.decode(model.encode(c)) for c in x.split(128)])
    return {"n": len(data), "psnr": psnr(x_hat, x).mean().item(), "ssim": ssim(x_hat, x).mean().item()}


@torch.no_grad()
def measurement_psnr(op: Operator, severities: list[float], data: ToyImages) -> dict[str, float]:
    """Mean PSNR of ``y`` against ``x`` on a toy split at each fixed severity of ``op`` (keyed ``f"{t:g}"``)."""
    x = torch.stack([data[k]["x"] for k in range(len(data))])
    seeds = torch.tensor([data[k]["seed"] for k in range(len(data))])
    out = {}
    for t in severities:
        op_t = fixed_severity(op, t)
        y = op_t.measure(x, op_t.draw(seeds, tuple(x.shape)), seeds)
        out[f"{t:g}"] = psnr(y, x).mean().item()
    return out


def operator(name: str) -> Operator:
    """The operator of ``conf/operator/<name>.yaml``."""
    from hydra.utils import instantiate

    return instantiate(OmegaConf.load(Path(CONFIG_DIR) / "operator" / f"{name}.yaml"))


@torch.no_grad()
def sample_grid(model: LatentDiffusion, path: Path, data: ToyImages, n: int = 64) -> float:
    """Draw ``n`` samples by 1000-step ancestral DDPM; saves them beside ``n`` real crops of ``data``. Returns
    seconds."""
    started = time.perf_counter()
    gens = sample_generators(range(n), salt=12345)
    z = torch.stack([torch.randn(model.latent_shape, generator=g) for g in gens])
    x = model.decode(sample(model, ddpm(), z, torch.full((n,), 1000), gens).latents).clamp(0, 1)
    seconds = time.perf_counter() - started
    real = torch.stack([data[k]["x"] for k in range(n)])
    side = int(n**0.5)
    save_image(torch.cat([make_grid(x, nrow=side, padding=1), torch.ones(3, side * 33 + 1, 8),
                          make_grid(real, nrow=side, padding=1)], dim=2), path)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(ROOT / "models" / "toy_ldm"), help="toy LDM folder")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where toy_world.json and the sample grid go")
    parser.add_argument("--samples", type=int, default=64, help="number of DDPM samples in the grid")
    parser.add_argument("--downscale", type=int, default=None,
                        help="dataset.downscale of the toy world (default: conf/dataset/toy.yaml's, with its val grid)")
    parser.add_argument("--val-stride", type=int, default=None, help="dataset.val_stride (default: the world's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = LatentDiffusion.from_pretrained(args.models)
    downscale, val_stride = toy_world(args.downscale, args.val_stride)
    splits = {s: ToyImages(s, downscale=downscale, val_stride=val_stride) for s in ("val", "test")}
    record = provenance(ROOT) | {
        "dataset": {"downscale": downscale, "val_stride": val_stride},
        "autoencoder": {s: autoencoder_quality(model, data) for s, data in splits.items()},
        "measurement_psnr_blur_by_std": {f"{3 * float(t):g}": v for t, v in measurement_psnr(
            operator("toy_blur_varying"), [0.0, 0.25, 0.5, 0.75, 1.0], splits["test"]).items()},
        "measurement_psnr_inpaint_by_missing": {f"{0.8 * float(t):g}": v for t, v in measurement_psnr(
            operator("toy_inpaint"), [0.875, 1.0], splits["test"]).items()},
        "training": {name: json.loads((Path(args.models) / name / "training.json").read_text())
                     for name in ("vae", "unet") if (Path(args.models) / name / "training.json").exists()},
        "sample_seconds": sample_grid(model, out / "toy_ldm_samples.png", splits["test"], args.samples),
    }
    (out / "toy_world.json").write_text(json.dumps(record, indent=2) + "\n")
    ae = record["autoencoder"]
    print(f"autoencoder PSNR/SSIM: val {ae['val']['psnr']:.2f}/{ae['val']['ssim']:.3f}, "
          f"test {ae['test']['psnr']:.2f}/{ae['test']['ssim']:.3f} dB")
    print("measurement PSNR by blur std:", {k: round(v, 2) for k, v in record["measurement_psnr_blur_by_std"].items()})
    print("measurement PSNR by missing fraction:",
          {k: round(v, 2) for k, v in record["measurement_psnr_inpaint_by_missing"].items()})
    print(f"wrote {out / 'toy_world.json'} and {out / 'toy_ldm_samples.png'}")


if __name__ == "__main__":
    main()

"""Synthetic run folders (summary.json, samples.csv, clean/ measurements/ images/) for report tests."""

import csv
import json

import numpy as np
from PIL import Image

COLUMNS = ["index", "image_id", "severity", "sigma2_hat", "t_start", "nfe", "psnr", "ssim", "lpips", "seconds",
           "toy_feature_mse"]


def make_run(folder, *, adapter="flash", operator="toy_blur_varying", noise=0.05, start=None, n=6, psnr=25.0,
             nfe=None, encoder="toy_severity_blur", overrides=(), fd=0.5, images=True):
    """One run folder; σ̂² grows with the severity, starts with σ̂², PSNR falls with it."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(str(folder)))
    severity = np.linspace(0, 1, n) if operator != "identity" else np.zeros(n)
    sigma2 = 0.01 + 0.1 * severity + 0.01 * rng.random(n) + (0.02 if noise > 0.05 else 0.0)
    steps = {"flash": (sigma2 * 600).astype(int), "none": np.full(n, 1000), "ae": np.zeros(n, int)}.get(
        adapter, np.full(n, start or 0))
    rows = [{"index": k, "image_id": f"toy/x/{k}", "severity": severity[k],
             "sigma2_hat": "" if adapter == "none" else sigma2[k], "t_start": "" if adapter == "ae" else steps[k],
             "nfe": steps[k], "psnr": psnr - 3 * severity[k], "ssim": 0.7, "lpips": "", "seconds": 0.1,
             "toy_feature_mse": 0.2} for k in range(n)]
    with open(folder / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    config = {"seed": 0, "num_images": n, "severity_encoder": f"/models/{encoder}",
              "operator": {"_target_": operator, "noise_std": noise},
              "adapter": {"_target_": adapter} | ({"t_start": start} if start is not None else {})}
    summary = {"method": f"{adapter}(latent_dps)", "solver": "latent_dps", "adapter": adapter, "operator": operator,
               "dataset": "toy", "n_images": n, "psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": 0.7,
               "lpips": None, "toy_feature_mse": 0.2, "fid": None, "fd_toy": fd,
               "nfe_mean": float(nfe if nfe is not None else steps.mean()), "seconds_per_image": 0.1,
               "unavailable": {"lpips": "LPIPS-VGG backbone weights unavailable: test", "fid": "FID: test"},
               "config": config}
    (folder / "summary.json").write_text(json.dumps(summary))
    if overrides:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if images:
        for sub in ("clean", "measurements", "images"):
            (folder / sub).mkdir()
            for k in range(n):
                Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(folder / sub / f"{k:05d}.png")
    return folder

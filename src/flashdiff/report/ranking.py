"""Rank a dataset's measurements by predicted severity σ̂² (paper §4.1: hard-example mining, Fig. 5: contributors).

Each image is measured exactly as ``python -m flashdiff`` measures it (``y = A(x) + n``, per-image seeds from
``measurement_seed(image seed, seed)``) and, with the same noise ``n`` and no degradation, as ``x + n``: the
noise-only σ̂² is the paper's proxy for the difficulty of the image itself, the rest is the degradation's.

    python -m flashdiff.rank [dataset=...] [operator=...] [severity_encoder=...] [num_images=N] [+rank.k=8]

writes ``ranking.csv`` (hardest first), ``ranking.json`` (Spearman with the true severity, counts, config) and
``contact_sheet.png`` (the k hardest and k easiest measurements over their clean images) into the run folder.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from flashdiff.errors import ConfigError, InputError
from flashdiff.metrics.ordering import rankdata, spearman
from flashdiff.records import write_atomic
from flashdiff.types import Operator, Params

log = logging.getLogger(__name__)

COLUMNS = ("rank", "index", "image_id", "severity", "sigma2_hat", "sigma2_hat_noise_only", "sigma2_hat_degradation",
           "degradation_share", "percentile", "percentile_noise_only")
"""``ranking.csv``: rank 1 = hardest (largest σ̂²); ``sigma2_hat_degradation`` = σ̂² − σ̂²(x + n), the part the
degradation adds; ``degradation_share`` = that over σ̂²; percentiles among the ranked images (paper Fig. 5)."""


def check_settings(num_images: int | None, batch_size: int, k: int, tile: int) -> None:
    """Raise ``ConfigError`` naming the key of a value out of range."""
    for key, value, lowest in (("num_images", num_images, 1), ("batch_size", batch_size, 1), ("rank.k", k, 1),
                               ("rank.tile", tile, 8)):
        if value is None and key == "num_images":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ConfigError(f"{key}={value}: must be an integer >= {lowest}"
                              + (" (or null for every image)" if key == "num_images" else ""))


def load_encoder(folder: str | Path | None) -> nn.Module:
    """``SeverityEncoder.from_pretrained(folder)``; a missing one is an ``InputError`` naming ``severity_encoder``."""
    from flashdiff.severity.encoder import SeverityEncoder

    if not folder:
        raise InputError("severity_encoder is not set: point it at a severity encoder folder "
                         "(e.g. severity_encoder=models/toy_severity_blur)")
    try:
        return SeverityEncoder.from_pretrained(folder)
    except FileNotFoundError as err:
        raise InputError(str(err)) from err


def measure(items: list[dict[str, Any]], op: Operator, seed: int,
            device: torch.device) -> tuple[Tensor, Tensor, Params, Tensor]:
    """``(x, y, params, seeds)`` of dataset items as ``python -m flashdiff`` measures them: ``y = A(x) + n``, (B, 3, H,
    W), every draw seeded per image by ``measurement_seed(image seed, seed)``."""
    from flashdiff.data.seeding import measurement_seed  # the data package (torchvision): only once images come

    seeds = torch.tensor([measurement_seed(int(item["seed"]), seed) for item in items])  # (B,)
    x = torch.stack([item["x"] for item in items]).to(device)  # (B, 3, H, W)
    params = op.draw(seeds, tuple(x.shape))
    return x, op.measure(x, params, seeds), params, seeds


@torch.no_grad()
def severity_scores(encoder: nn.Module, op: Operator, dataset: Dataset, *, num_images: int | None = None,
                    batch_size: int = 16, seed: int = 0, device: torch.device | str = "cpu",
                    progress: bool = True) -> list[dict[str, Any]]:
    """σ̂² (paper eq. 2) of ``y = A(x) + n`` and of ``x + n`` with the same ``n``, per image in dataset order;
    each batch (B, 3, H, W) is measured with per-image seeds, so the values do not depend on ``batch_size``."""
    from flashdiff.operators import Identity  # kornia: only once there is something to rank

    device = torch.device(device)
    encoder = encoder.to(device).eval()
    noise_only = Identity(noise_std=op.noise_std)  # A = I: x + noise_std * n, n from the same per-image seed
    n = len(dataset) if num_images is None else min(int(num_images), len(dataset))
    rows: list[dict[str, Any]] = []
    with tqdm(total=n, desc="rank", unit="img", dynamic_ncols=True, disable=not progress) as bar:
        for start in range(0, n, batch_size):
            items = [dataset[j] for j in range(start, min(start + batch_size, n))]
            x, y, params, seeds = measure(items, op, seed, device)
            y0 = noise_only.measure(x, noise_only.draw(seeds, tuple(x.shape)), seeds)  # (B, 3, H, W)
            sigma2, sigma2_0 = encoder(y)[1].cpu().tolist(), encoder(y0)[1].cpu().tolist()  # (B,) each
            rows += [{"index": int(it["index"]), "image_id": str(it["id"]), "severity": float(t),
                      "sigma2_hat": float(s), "sigma2_hat_noise_only": float(s0)}
                     for it, t, s, s0 in zip(items, params["severity"].cpu().tolist(), sigma2, sigma2_0)]
            bar.update(len(items))
    return rows


def percentiles(values: Sequence[float]) -> list[float]:
    """Percentile rank of each value among ``values`` (share below, ties counted half), in [0, 100]."""
    ranks = rankdata(torch.tensor(values, dtype=torch.float64))
    return (100.0 * (ranks - 0.5) / len(values)).tolist()


def rank_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted hardest first (σ̂² descending, ties by index) with rank, the degradation's part and percentiles."""
    if not rows:
        return []
    pct = percentiles([r["sigma2_hat"] for r in rows])
    pct0 = percentiles([r["sigma2_hat_noise_only"] for r in rows])
    out = []
    for r, p, p0 in zip(rows, pct, pct0):
        extra = r["sigma2_hat"] - r["sigma2_hat_noise_only"]
        share = extra / r["sigma2_hat"] if r["sigma2_hat"] > 0 else float("nan")
        out.append({**r, "sigma2_hat_degradation": extra, "degradation_share": share, "percentile": p,
                    "percentile_noise_only": p0})
    out.sort(key=lambda r: (-r["sigma2_hat"], r["index"]))
    return [{"rank": i, **r} for i, r in enumerate(out, 1)]


def write_ranking(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """``ranking.csv`` (atomically), one row per image in ``COLUMNS`` order; ids with commas are quoted."""
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: f"{v:.6g}" if isinstance(v, float) else v for c, v in r.items()} for r in rows)
    write_atomic(path, text.getvalue())


def read_ranking(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``ranking.csv``."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _rho(a: list[float], b: list[float]) -> float | None:
    """Spearman of two lists; None where it is undefined (fewer than 2 values, one constant)."""
    if len(a) < 2:
        return None
    rho = spearman(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    return None if math.isnan(rho) else round(rho, 4)


def ranking_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Spearman of σ̂², of the noise-only σ̂² and of the degradation's part with the true severity; counts."""
    t = [r["severity"] for r in rows]
    s2, s2_0 = [r["sigma2_hat"] for r in rows], [r["sigma2_hat_noise_only"] for r in rows]
    return {"images": len(rows),
            "spearman_sigma2_hat_severity": _rho(s2, t),
            "spearman_noise_only_severity": _rho(s2_0, t),
            "spearman_degradation_severity": _rho([r["sigma2_hat_degradation"] for r in rows], t),
            "spearman_sigma2_hat_noise_only": _rho(s2, s2_0),
            "mostly_degradation": sum(r["degradation_share"] > 0.5 for r in rows),  # NaN compares False
            "noise_only_above_degraded": sum(r["sigma2_hat_degradation"] < 0 for r in rows),
            "sigma2_hat_mean": sum(s2) / len(s2) if s2 else None,
            "sigma2_hat_noise_only_mean": sum(s2_0) / len(s2_0) if s2_0 else None}


def _label(r: dict[str, Any]) -> str:
    """The three lines above a contact-sheet column: rank and σ̂², noise-only σ̂², true severity."""
    return (f"#{r['rank']}  σ̂² {r['sigma2_hat']:.3g}\nnoise only {r['sigma2_hat_noise_only']:.3g}\n"
            f"true t {r['severity']:.2f}")


def _images(rows: list[dict[str, Any]], op: Operator, dataset: Dataset, seed: int,
            device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Clean images and measurements (k, 3, H, W) of ``rows``, measured again from their per-image seeds."""
    if not rows:
        return torch.empty(0, 3, 1, 1), torch.empty(0, 3, 1, 1)
    x, y, _, _ = measure([dataset[r["index"]] for r in rows], op, seed, torch.device(device))
    return x.cpu(), y.cpu()


def write_contact_sheet(path: str | Path, rows: list[dict[str, Any]], op: Operator, dataset: Dataset, *, seed: int,
                        k: int = 8, tile: int = 128, device: torch.device | str = "cpu") -> Path:
    """``contact_sheet.png``: the ``k`` hardest (rank 1 first) and ``k`` easiest (easiest first) of ranked ``rows``."""
    from flashdiff.report.contact_sheet import Section, contact_sheet

    k = min(k, len(rows))
    hardest, easiest = rows[:k], rows[::-1][:k]
    sections = []
    for name, chosen in ((f"hardest {k} (largest σ̂²)", hardest), (f"easiest {k} (smallest σ̂²)", easiest)):
        x, y = _images(chosen, op, dataset, seed, device)
        sections.append(Section(f"{name}: clean above, measurement y below", x, y, [_label(r) for r in chosen]))
    return contact_sheet(path, sections, tile=tile)


def rank_dataset(out: str | Path, encoder: nn.Module, op: Operator, dataset: Dataset, *, num_images: int | None,
                 batch_size: int = 16, seed: int = 0, device: torch.device | str = "cpu", k: int = 8, tile: int = 128,
                 info: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Score and rank the first ``num_images`` images; write ``ranking.csv``, ``contact_sheet.png`` and
    ``ranking.json`` into ``out``. Returns the summary written to ``ranking.json``."""
    check_settings(num_images, batch_size, k, tile)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = rank_rows(severity_scores(encoder, op, dataset, num_images=num_images, batch_size=batch_size, seed=seed,
                                     device=device, progress=progress))
    if not rows:
        raise InputError("the dataset has no images to rank (check dataset=... and its folder)")
    write_ranking(out / "ranking.csv", rows)
    write_contact_sheet(out / "contact_sheet.png", rows, op, dataset, seed=seed, k=k, tile=tile, device=device)
    summary = {**ranking_summary(rows), "shown": {"hardest": min(k, len(rows)), "easiest": min(k, len(rows))},
               "seed": seed, "num_images": num_images, "batch_size": batch_size, **(info or {})}
    write_atomic(out / "ranking.json", json.dumps(summary, indent=2, default=str) + "\n")
    log.info("ranked %d images by σ̂²: Spearman with the true severity %s (noise only: %s) -> %s", len(rows),
             summary["spearman_sigma2_hat_severity"], summary["spearman_noise_only_severity"], out / "ranking.csv")
    return summary

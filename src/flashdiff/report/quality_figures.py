"""Figures about reconstruction quality: quality vs mean steps for fixed starts with the adaptive point (paper
Fig. 7 top / 13), Flash vs baselines across test noise levels (Fig. 8), and an easy / median / hard gallery (Fig. 6)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter, ScalarFormatter
from PIL import Image

from flashdiff.report.plots import TRAINING_NOISE, NoDataError, grid, has_values, preferred_per_key, safe_name, save
from flashdiff.report.runs import FIXED_ADAPTERS, FLASH_ADAPTERS, Run, method_label

QUALITY = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("lpips", "LPIPS"), ("fid", "FID"),
           ("fd_toy", "fd_toy (toy features, not FID)"))
GALLERY_FOLDERS = (("clean", "clean"), ("measurements", "measurement"), ("images", "reconstruction"))


def _metrics(runs: list[Run]) -> list[tuple[str, str]]:
    """The quality metrics present (non-null) in at least one of the runs."""
    return [(k, name) for k, name in QUALITY if any(r.get(k) is not None for r in runs)]


def _same_images(run: Run) -> tuple:
    """Runs comparable point by point: same task, noise, images, seed and severity encoder."""
    return run.get("operator"), run.noise_std, run.get("n_images"), run.config("seed"), run.get("dataset"), run.encoder


def quality_vs_steps(runs: list[Run], out: Path) -> list[Path]:
    """Fig. 7 top / 13: every metric against mean NFE for fixed starts i' (a curve) and Flash (the adaptive point)."""
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        if run.adapter in (*FIXED_ADAPTERS, *FLASH_ADAPTERS):
            groups[_same_images(run)].append(run)
    usable = {k: v for k, v in groups.items() if sum(r.adapter in FIXED_ADAPTERS for r in v) >= 2
              and any(r.adapter in FLASH_ADAPTERS for r in v)}
    if not usable:
        raise NoDataError("needs >= 2 fixed-start runs (adapter=fixed adapter.t_start=...) and a Flash run on the "
                          "same operator, σ_y, images and seed (+experiment=toy_study_fixed_start and "
                          "+experiment=toy_varblur)")
    paths = []
    for (operator, noise, n, *_), members in usable.items():
        metrics = _metrics(members)
        fig, axes = grid(len(metrics))
        fixed = sorted([r for r in members if r.adapter in FIXED_ADAPTERS], key=lambda r: r.get("nfe_mean"))
        for ax, (key, name) in zip(axes, metrics):
            pts = [(r.get("nfe_mean"), r.get(key), r.t_start)
                   for r in fixed if r.get(key) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="tab:blue", label="fixed start i'")
                for x, y, start in pts:
                    ax.annotate(f"{start}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
            for r in members:
                if r.adapter in FLASH_ADAPTERS and r.get(key) is not None:
                    ax.plot(r.get("nfe_mean"), r.get(key), "*", ms=14, color="tab:red", label=method_label(r))
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set(xlabel="mean reverse steps per image (NFE̅, log)", ylabel=name, title=name)
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3, which="both")
        fig.suptitle(f"Quality vs steps, {operator}, σ_y={noise}, {n} images (labels: i')", fontsize=10)
        paths.append(save(fig, out / f"fig7_quality_vs_steps_{safe_name(str(operator))}.png"))
    return paths


def noise_robustness(runs: list[Run], out: Path) -> list[Path]:
    """Fig. 8: each metric against the test noise level σ_y, one line per method, one figure per operator."""
    by_task: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.noise_std is not None:
            label = method_label(run) + (f" ({run.encoder})" if run.encoder else "")
            by_task[str(run.get("operator"))][label].append(run)
    by_task = {op: {label: v for label, v in m.items() if len({r.noise_std for r in v}) >= 2}
               for op, m in by_task.items()}  # only methods run at several noise levels
    usable = {op: m for op, m in by_task.items() if m}
    if not usable:
        raise NoDataError("needs runs of one method at >= 2 test noise levels (operator.noise_std=..., e.g. "
                          "+experiment=toy_study_noise)")
    paths = []
    for operator, methods in usable.items():
        members = [r for v in methods.values() for r in v]
        metrics = _metrics(members)
        fig, axes = grid(len(metrics))
        for ax, (key, name) in zip(axes, metrics):
            for label, rs in methods.items():
                pts = sorted((r.noise_std, r.get(key), r.get("n_images")) for r in rs if r.get(key) is not None)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-",
                            label=f"{label}, n = {'/'.join(sorted({str(p[2]) for p in pts}))}")
            ax.axvline(TRAINING_NOISE, color="gray", ls="--", lw=1, label=f"training σ_y = {TRAINING_NOISE}")
            ax.set(xlabel="test noise level σ_y", ylabel=name, title=name)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        fig.suptitle(f"Noise robustness: {operator}", fontsize=10)
        paths.append(save(fig, out / f"fig8_noise_robustness_{safe_name(operator)}.png"))
    return paths


def _picks(run: Run) -> list[tuple[str, dict[str, str]]]:
    """Easy / median / hard images of a run by σ̂²."""
    rows = sorted(run.rows, key=lambda r: float(r["sigma2_hat"]))
    return [("easy", rows[0]), ("median", rows[len(rows) // 2]), ("hard", rows[-1])]


def gallery(runs: list[Run], out: Path) -> list[Path]:
    """Fig. 6: clean | measurement | reconstruction for the easiest, median and hardest image by σ̂, per
    (operator, encoder) of the Flash runs whose folders hold clean/ and measurements/ (at σ_y = 0.05 if run)."""
    candidates = [r for r in runs if r.adapter in FLASH_ADAPTERS and has_values(r, "sigma2_hat")
                  and all((r.folder / f).is_dir() for f, _ in GALLERY_FOLDERS)]
    keyed = {(op, enc, r.noise_std): r for (op, enc), r in
             preferred_per_key(candidates, lambda r: (r.get("operator"), r.encoder)).items()}
    if not keyed:
        raise NoDataError("needs a Flash run whose folder has clean/, measurements/ and images/ (runs made "
                          "before measurements were saved lack them)")
    paths = []
    for (operator, encoder, noise), run in keyed.items():
        fig, axes = plt.subplots(3, 3, figsize=(7.2, 7.8), squeeze=False)
        for i, (level, row) in enumerate(_picks(run)):
            name = f"{int(row['index']):05d}.png"
            for j, (folder, title) in enumerate(GALLERY_FOLDERS):
                ax = axes[i][j]
                ax.imshow(np.asarray(Image.open(run.folder / folder / name).convert("RGB")), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(title)
            psnr = float(row["psnr"])
            axes[i][0].set_ylabel(f"{level}\nσ̂={float(row['sigma2_hat']) ** 0.5:.3f}\nt_start={row['t_start'] or '–'}"
                                  f"\nPSNR {psnr:.1f} dB", fontsize=8)
        fig.suptitle(f"{method_label(run)}: {operator}, encoder {encoder}, σ_y={noise}", fontsize=10)
        paths.append(save(fig, out / f"fig6_gallery_{safe_name(f'{operator}_{encoder}_{noise}')}.png"))
    return paths

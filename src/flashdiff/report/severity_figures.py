"""Figures about the severity encoder and the start it picks: σ̂ vs severity (paper Fig. 4), contributors of σ̂
(Fig. 5), the histogram of start steps (Fig. 7 bottom) and ordering accuracy vs test noise (Fig. 10)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from flashdiff.metrics.ordering import spearman
from flashdiff.metrics.severity_study import ordering_by_noise, read_study
from flashdiff.report.plots import (
    TRAINING_NOISE,
    NoDataError,
    grid,
    has_values,
    largest_per_key,
    noise_text,
    preferred_per_key,
    save,
)
from flashdiff.report.runs import FLASH_ADAPTERS, Run

PERCENTILES = (10, 50, 90)


def _sigma_runs(runs: list[Run]) -> list[Run]:
    """Runs whose samples.csv holds σ̂² for every image (Flash, fixed start and AE with an encoder)."""
    return [r for r in runs if has_values(r, "sigma2_hat")]


def _title(run: Run) -> str:
    """``operator, σ_y`` and the encoder of a run, on two lines."""
    return f"{run.get('operator')}, σ_y={noise_text(run.noise_std)}\nencoder {run.encoder}"


def sigma_vs_severity(runs: list[Run], out: Path) -> list[Path]:
    """Fig. 4: predicted σ̂ against the true severity per image, one panel per (operator, encoder), at σ_y = 0.05
    when such a run exists."""
    keyed = preferred_per_key([r for r in _sigma_runs(runs) if len(set(r.column("severity"))) > 1],
                              lambda r: (r.get("operator"), r.encoder))
    if not keyed:
        raise NoDataError("needs a run with sigma2_hat (adapter flash/fixed/ae) on an operator whose severity "
                          "varies")
    fig, axes = grid(len(keyed))
    for ax, run in zip(axes, keyed.values()):
        t, s2 = np.array(run.column("severity")), np.array(run.column("sigma2_hat"))
        rho = spearman(torch.tensor(s2), torch.tensor(t))
        ax.scatter(t, np.sqrt(s2), s=12, alpha=0.7)
        ax.set(xlabel="true severity t", ylabel="predicted σ̂", title=f"{_title(run)}, Spearman ρ = {rho:.2f}")
        ax.grid(alpha=0.3)
    fig.suptitle("σ̂ vs true severity (toy blur: std = 3t px; inpainting: missing fraction = 0.8t)", fontsize=10)
    return [save(fig, out / "fig4_sigma_vs_severity.png")]


def contributors(runs: list[Run], out: Path) -> tuple[list[Path], list[str]]:
    """Fig. 5: percentiles of σ̂ with noise only (operator=identity) against degraded + noise, per encoder.

    Returns the figure and one text line per series with its 10/50/90th percentiles.
    """
    sig = _sigma_runs(runs)
    same = lambda r: (r.encoder, r.noise_std, r.get("n_images"), r.config("seed"))  # noqa: E731  same images
    noisy = largest_per_key([r for r in sig if r.get("operator") == "identity"], same)
    degraded = largest_per_key([r for r in sig if r.get("operator") != "identity"],
                               lambda r: (*same(r), r.get("operator")))
    pairs = [((k[0], k[1]), run, [d for dk, d in degraded.items() if dk[:4] == k]) for k, run in noisy.items()]
    pairs = [(k, run, others) for k, run, others in pairs if others]
    if not pairs:
        raise NoDataError("needs runs with sigma2_hat under operator=identity (noise only) and under a "
                          "degrading operator with the same encoder and σ_y (+experiment=toy_study_contributors)")
    fig, axes = grid(len(pairs), width=5.0)
    q = np.linspace(0, 100, 101)
    lines = []
    for ax, ((encoder, noise), run, others) in zip(axes, pairs):
        for label, r in [("noise only (A = I)", run), *[(f"{o.get('operator')} + noise", o) for o in others]]:
            sigma = np.sqrt(np.array(r.column("sigma2_hat")))
            ax.plot(q, np.percentile(sigma, q), label=f"{label} (n = {len(sigma)})")
            pct = ", ".join(f"p{p} {np.percentile(sigma, p):.3f}" for p in PERCENTILES)
            lines.append(f"{encoder}, σ_y={noise_text(noise)}, {label}: σ̂ {pct}")
        ax.set(xlabel="percentile of test images", ylabel="predicted σ̂",
               title=f"encoder {encoder}, σ_y={noise_text(noise)}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return [save(fig, out / "fig5_severity_contributors.png")], lines


def start_histogram(runs: list[Run], out: Path) -> list[Path]:
    """Fig. 7 bottom: histogram of Flash's start steps ``t_start``, one panel per (operator, encoder, solver), at
    σ_y = 0.05 when such a run exists."""
    keyed = preferred_per_key([r for r in runs if r.adapter in FLASH_ADAPTERS and r.rows],
                              lambda r: (r.get("operator"), r.encoder, r.get("solver")))
    if not keyed:
        raise NoDataError("needs a Flash run (adapter=flash or flash_ddim_encoding)")
    fig, axes = grid(len(keyed))
    for ax, run in zip(axes, keyed.values()):
        starts = [int(v) for v in run.column("t_start") if v is not None]
        none = len(run.rows) - len(starts)
        ax.hist(starts, bins=min(30, max(5, len(set(starts)))), color="tab:blue", alpha=0.8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="start step t_start (training steps, of 1000)", ylabel="images",
               title=f"{_title(run)}\nmean NFE {run.get('nfe_mean'):.1f}, {none}/{len(run.rows)} with no diffusion")
        ax.grid(alpha=0.3)
    return [save(fig, out / "fig7_start_histogram.png")]


def ordering_vs_noise(studies: list[Path], out: Path) -> tuple[list[Path], list[str]]:
    """Fig. 10: ordering accuracy (mean ± std over images and noise seeds) against the test noise level σ_y."""
    if not studies:
        raise NoDataError("needs a severity_study.csv (python -m flashdiff.severity_study "
                          "+experiment=toy_study_ordering)")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    lines = []
    for path in studies:
        by_noise = ordering_by_noise(read_study(path))
        info = json.loads((path.parent / "study.json").read_text()) if (path.parent / "study.json").exists() else {}
        label = f"{Path(str(info.get('severity_encoder', path.parent))).name} on {info.get('operator', '?')}"
        sigma = list(by_noise)
        mean = [float(np.mean(v)) for v in by_noise.values()]
        std = [float(np.std(v)) for v in by_noise.values()]
        ax.errorbar(sigma, mean, yerr=std, marker="o", capsize=3, label=label)
        lines.append(f"{label}: " + ", ".join(f"σ_y={s:g}: {m:.3f}" for s, m in zip(sigma, mean)))
    ax.axvline(TRAINING_NOISE, color="gray", ls="--", label=f"training σ_y = {TRAINING_NOISE}")
    ax.axhline(0.5, color="gray", ls=":", label="random order")
    ax.set(xlabel="test noise level σ_y", ylabel="ordering accuracy (mean ± std over images, seeds)",
           ylim=(0.3, 1.02), title="Ordering accuracy vs test noise")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return [save(fig, out / "fig10_ordering_vs_noise.png")], lines

"""Training of the severity encoder (paper §3.1, METHOD.md §2) on pairs degraded on the fly, and its validation.

``train_severity_encoder`` is the command behind ``python -m flashdiff.train train=severity_blur|severity_inpaint``:
copy ``E0``, initialise the σ head at the data's error-variance scale, fit, validate (Spearman and ordering
accuracy of σ̂², next to the same statistics of the true error variance, the ceiling σ̂² approximates), save.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.severity.encoder import SeverityEncoder, error_variance, ordering_accuracy, severity_loss, spearman
from flashdiff.train.commands import record_training
from flashdiff.train.loop import LoopSettings, fit
from flashdiff.types import Operator

log = logging.getLogger(__name__)

LOSS_TERMS = ("loss", "latent", "sigma", "image")


def train_range(op: Operator) -> tuple[float, float]:
    """The operator's training severity range ``[lo, hi]``; ValueError unless it spans an interval (lo < hi)."""
    rng = getattr(op, "train_severity_range", None)
    if rng is None or not rng[0] < rng[1]:
        raise ValueError(f"a severity encoder needs an operator whose severity varies: {type(op).__name__} has "
                         f"train_severity_range {rng}; use e.g. operator=toy_blur_varying or toy_inpaint")
    return float(rng[0]), float(rng[1])


def fixed_severity(op: Operator, t: float) -> Operator:
    """A copy of ``op`` whose (test) draws all have severity ``t``; other randomness stays keyed on the seeds."""
    fixed = copy.deepcopy(op)
    fixed.severity_range = (float(t), float(t))
    return fixed


def resolve_lambda_sigma(lambda_sigma: float | str, v0: float) -> float:
    """``λσ`` as configured, or ``1 / v0²`` for ``"auto"`` (the prototype's variance term divided by v0², λσ = 1)."""
    if isinstance(lambda_sigma, str):
        if lambda_sigma != "auto":
            raise ValueError(f"train.lambda_sigma must be a number or 'auto', got {lambda_sigma!r}")
        return 1.0 / v0**2
    return float(lambda_sigma)


class SeverityObjective(nn.Module):
    """``model(batch)`` -> the METHOD.md §2 loss terms for clean ``x`` (B, 3, H, W) in [0,1], degraded on the fly.

    Each sample gets its own degradation drawn over the operator's training range plus its noise σ_y; ``z0 = E0(x)``
    and ``D0`` come from the frozen autoencoder (gradients flow through ``D0`` into ``ẑ``).
    """

    def __init__(self, encoder: SeverityEncoder, ldm: LatentDiffusion, op: Operator, lambda_sigma: float,
                 lambda_im: float, detach_target: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.ldm = LatentDiffusion(ldm.autoencoder, None, ldm.scale_factor).requires_grad_(False).eval()
        self.op = op
        self.lambda_sigma, self.lambda_im = float(lambda_sigma), float(lambda_im)
        self.detach_target = bool(detach_target)

    def train(self, mode: bool = True) -> SeverityObjective:
        """Train mode for the encoder only; the frozen autoencoder stays in eval mode."""
        super().train(mode)
        self.ldm.eval()
        return self

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Loss terms (scalars) for ``batch["x"]`` (B, 3, H, W): loss, latent, sigma, image."""
        x = batch["x"]  # (B, 3, H, W) in [0, 1]
        with torch.no_grad():
            params = self.op.draw(None, tuple(x.shape), train=True)
            y = self.op.measure(x, params)
            z0 = self.ldm.encode(x)  # (B, C, h, w)
        z_hat, sigma2_hat = self.encoder(y)
        x_rec = 2.0 * self.ldm.decode(z_hat) - 1.0  # D0(ẑ) in [-1, 1]
        return severity_loss(z_hat, sigma2_hat, z0, x_rec, 2.0 * x - 1.0, lambda_sigma=self.lambda_sigma,
                             lambda_im=self.lambda_im, detach_target=self.detach_target)


def clean_batch(dataset: Dataset, start: int, stop: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Clean images (B, 3, H, W) on ``device`` and their per-image seeds (B,) on the CPU."""
    items = [dataset[k] for k in range(start, stop)]
    x = torch.stack([item["x"] for item in items]).to(device)
    return x, torch.tensor([int(item["seed"]) for item in items], dtype=torch.int64)


def _hat_and_true(encoder: SeverityEncoder, y: Tensor, z0: Tensor) -> tuple[Tensor, Tensor]:
    """``σ̂²`` and the true error variance ``σ̄²`` of ``ẑ = Ê(y)`` against ``z0``, both (B,)."""
    z_hat, sigma2_hat = encoder(y)
    return sigma2_hat, error_variance(z_hat, z0)


@torch.no_grad()
def grid_scores(score: Callable[[Tensor], tuple[Tensor, ...]], op: Operator, x: Tensor, seeds: Tensor,
                grid: Tensor) -> list[Tensor]:
    """Each (B,) output of ``score(y)`` at every grid severity, as (B, n) on the CPU; noise seeded per image.

    The noise (and any other randomness of the draw) is keyed on the image's seed alone, so it is the same at every
    severity of the grid: the ordering accuracy then measures the severity, not the noise.
    """
    columns = []
    for t in grid.tolist():
        op_t = fixed_severity(op, t)
        columns.append(score(op_t.measure(x, op_t.draw(seeds, tuple(x.shape)), seeds)))
    return [torch.stack(c, 1).cpu() for c in zip(*columns, strict=True)]


@torch.no_grad()
def validate_severity(encoder: SeverityEncoder, ldm: LatentDiffusion, op: Operator, dataset: Dataset, *,
                      lambda_sigma: float, lambda_im: float, n_grid: int = 10, max_images: int | None = 100,
                      batch_size: int = 32, run: Any = None, step: int | None = None,
                      prefix: str = "severity_val") -> dict[str, float]:
    """Spearman(σ̂², t), ordering accuracy (App. C Def. 1, ``n_grid`` severities), both also for the true σ̄², loss terms.

    Spearman and the loss terms use one seeded random severity per image over the training range; the ordering
    accuracy a uniform grid over that range per clean image (averaged over images). Logged under ``prefix/``.
    """
    encoder.check_matches(ldm)
    lo, hi = train_range(op)
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    grid = torch.linspace(lo, hi, n_grid)
    severity, hat, true, grid_hat, grid_true = [], [], [], [], []
    sums = dict.fromkeys(LOSS_TERMS, 0.0)
    for start in range(0, n, batch_size):
        x, seeds = clean_batch(dataset, start, min(start + batch_size, n), device)
        params = op.draw(seeds, tuple(x.shape), train=True)  # per-image seeded, training range
        y = op.measure(x, params, seeds)
        z0 = ldm.encode(x)
        z_hat, sigma2_hat = encoder(y)
        terms = severity_loss(z_hat, sigma2_hat, z0, 2.0 * ldm.decode(z_hat) - 1.0, 2.0 * x - 1.0,
                              lambda_sigma=lambda_sigma, lambda_im=lambda_im)
        for k in LOSS_TERMS:
            sums[k] += terms[k].item() * x.shape[0]
        severity.append(params["severity"].cpu())
        hat.append(sigma2_hat.cpu())
        true.append(error_variance(z_hat, z0).cpu())
        gh, gt = grid_scores(lambda y, z0=z0: _hat_and_true(encoder, y, z0), op, x, seeds, grid)
        grid_hat.append(gh)
        grid_true.append(gt)
    encoder.train(was_training)
    severity, hat, true = torch.cat(severity), torch.cat(hat), torch.cat(true)
    grid_s = grid.expand(n, -1)
    result = {k: v / n for k, v in sums.items()} | {
        "spearman": spearman(hat, severity), "spearman_true": spearman(true, severity),
        "ordering_accuracy": ordering_accuracy(grid_s, torch.cat(grid_hat)).mean().item(),
        "ordering_accuracy_true": ordering_accuracy(grid_s, torch.cat(grid_true)).mean().item(),
        "sigma2_hat_mean": hat.mean().item(), "error_variance_mean": true.mean().item(), "n_images": n}
    log.info("%s: %s", prefix, json.dumps({k: round(v, 5) for k, v in result.items()}))
    if run is not None:
        run.log({f"{prefix}/{k}": v for k, v in result.items()}, step=step)
    return result


@torch.no_grad()
def initial_error_variance(encoder: SeverityEncoder, ldm: LatentDiffusion, op: Operator, dataset: Dataset,
                           batch_size: int) -> tuple[float, Tensor]:
    """``v0``: mean true ``σ̄²`` of the untrained encoder on the first training batch; also that batch's ``y``."""
    device = next(encoder.parameters()).device
    x, seeds = clean_batch(dataset, 0, min(batch_size, len(dataset)), device)
    y = op.measure(x, op.draw(seeds, tuple(x.shape), train=True), seeds)
    v0 = error_variance(encoder(y)[0], ldm.encode(x)).mean().item()
    return v0, y


def train_severity_encoder(ldm: LatentDiffusion, op: Operator, settings: LoopSettings, train_set: Dataset,
                           val_set: Dataset, output_dir: str | Path, workdir: str | Path, *,
                           lambda_sigma: float | str = "auto", lambda_im: float = 1.0, head_lr_mult: float = 10.0,
                           detach_target: bool = False, head_context: int = 0, head_stop_grad: bool = False,
                           head_features: bool = False, head_energy: int = 0,
                           head_energy_early: bool = False, run: Any = None, test_set: Dataset | None = None,
                           max_val_images: int | None = 100) -> dict[str, Any]:
    """Fine-tune ``Ê`` from ``ldm``'s ``E0`` (METHOD.md §2), validate, save to ``output_dir``; returns the numbers.

    The σ head starts at ``mean σ̂² = v0`` (the first training batch's true error variance); ``lambda_sigma="auto"``
    means ``1 / v0²``. Result keys: ``v0``, ``lambda_sigma``, ``seconds``, ``parameters`` and, for
    ``init_val`` (before training), ``val`` and ``test`` (when given), ``<split>_<statistic>``.
    """
    started = time.perf_counter()
    train_range(op)
    encoder = SeverityEncoder.from_latent_diffusion(ldm, head_lr_mult=head_lr_mult, head_context=head_context,
                                                    head_stop_grad=head_stop_grad, head_features=head_features,
                                                    head_energy=head_energy, head_energy_early=head_energy_early)
    v0, y = initial_error_variance(encoder, ldm, op, train_set, settings.batch_size)
    encoder.init_head_scale(y, v0)
    lam = resolve_lambda_sigma(lambda_sigma, v0)
    log.info("severity encoder: v0 = %.4g, lambda_sigma = %.4g, lambda_im = %.4g", v0, lam, lambda_im)
    common = {"lambda_sigma": lam, "lambda_im": lambda_im, "max_images": max_val_images, "run": run}
    result: dict[str, Any] = {"v0": v0, "lambda_sigma": lam, "lambda_im": float(lambda_im),
                              "detach_target": bool(detach_target), "head_context": int(head_context),
                              "head_stop_grad": bool(head_stop_grad), "head_features": bool(head_features),
                              "head_energy": int(head_energy), "head_energy_early": bool(head_energy_early),
                              "head_lr_mult": float(head_lr_mult)}
    result |= _prefixed("init_val", validate_severity(encoder, ldm, op, val_set, step=0, prefix="severity_init_val",
                                                      **common))
    def watch(step: int, objective: nn.Module) -> None:
        """Validation numbers during training (the issue's advice: watch them)."""
        with torch.no_grad():
            validate_severity(objective.encoder.eval(), ldm, op, val_set, step=step, prefix="severity_val", **common)

    objective = SeverityObjective(encoder, ldm, op, lam, lambda_im, detach_target)
    objective = fit(objective, train_set, settings, workdir, run=run, desc="severity", callback=watch)
    encoder = objective.encoder.eval()
    result |= _prefixed("val", validate_severity(encoder, ldm, op, val_set, step=settings.steps,
                                                 prefix="severity_val", **common))
    if test_set is not None:
        result |= _prefixed("test", validate_severity(encoder, ldm, op, test_set, step=settings.steps,
                                                      prefix="severity_test", **common))
    result |= {"seconds": time.perf_counter() - started, "parameters": sum(p.numel() for p in encoder.parameters())}
    operator = {"class": type(op).__name__, "settings": op.extra_repr() if hasattr(op, "extra_repr") else ""}
    encoder.save_pretrained(output_dir, metadata={"operator": operator, "v0": v0, "lambda_sigma": lam,
                                                  "lambda_im": float(lambda_im)})
    arch = {k: v for k, v in encoder.config().items() if k != "autoencoder_config"}
    record_training(Path(output_dir), workdir, result, settings, arch)
    log.info("severity encoder saved to %s: %s", output_dir, json.dumps(result))
    if run is not None:
        run.summary.update({f"severity/{k}": v for k, v in result.items()})
    return result


def _prefixed(prefix: str, stats: dict[str, float]) -> dict[str, float]:
    """``{"<prefix>_<key>": value}``."""
    return {f"{prefix}_{k}": v for k, v in stats.items()}

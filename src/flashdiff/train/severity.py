"""Training of the severity encoder (paper §3.1, METHOD.md §2) on pairs degraded on the fly, and its validation.

``train_severity_encoder`` is the trainer of ``python -m flashdiff.train train=severity_*`` (and of the
``train_severity_*`` experiments): copy ``E0``, initialise the σ head at the data's error-variance scale, fit,
validate (Spearman and ordering accuracy of σ̂², next to the same statistics of the true error variance, the
ceiling σ̂² approximates), save.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.metrics.ordering import ordering_accuracy, spearman
from flashdiff.severity.encoder import HeadFactory, SeverityEncoder, SigmaHead
from flashdiff.severity.loss import LossWeights, error_variance
from flashdiff.train.commands import record_training
from flashdiff.train.loop import LoopSettings, TrainingJob, fit
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


class SeverityObjective(nn.Module):
    """``model(batch)`` -> the METHOD.md §2 loss terms for clean ``x`` (B, 3, H, W) in [0,1], degraded on the fly.

    Each sample gets its own degradation drawn over the operator's training range plus its noise σ_y; ``z0 = E0(x)``
    and ``D0`` come from the frozen autoencoder (gradients flow through ``D0`` into ``ẑ``).
    """

    def __init__(self, encoder: SeverityEncoder, ldm: LatentDiffusion, op: Operator, loss: LossWeights) -> None:
        super().__init__()
        self.encoder = encoder
        self.ldm = LatentDiffusion(ldm.autoencoder, None, ldm.scale_factor, shift_factor=ldm.shift_factor)
        self.ldm.requires_grad_(False).eval()
        self.op = op
        self.loss = loss  # lambda_sigma a number (LossWeights.resolve)

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
        return self.loss(z_hat, sigma2_hat, z0, x_rec, 2.0 * x - 1.0)


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
                      loss: LossWeights, n_grid: int = 10, max_images: int | None = 100,
                      batch_size: int = 32, run: Any = None, step: int | None = None,
                      prefix: str = "severity_val") -> dict[str, float]:
    """Spearman(σ̂², t), ordering accuracy (App. C Def. 1, ``n_grid`` severities), both also for the true σ̄², loss terms.

    Spearman and the loss terms use one seeded random severity per image over the training range; the ordering
    accuracy a uniform grid over that range per clean image (averaged over images). ``loss``: numeric weights.
    Logged under ``prefix/``.
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
        terms = loss(z_hat, sigma2_hat, z0, 2.0 * ldm.decode(z_hat) - 1.0, 2.0 * x - 1.0)
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


def train_severity_encoder(job: TrainingJob, model: LatentDiffusion, *, operator: Operator, loss: LossWeights,
                           loop: LoopSettings, head: SigmaHead | HeadFactory | None = None,
                           max_val_images: int | None = 100) -> dict[str, Any]:
    """Fine-tune ``Ê`` from ``model``'s ``E0`` with ``head`` (None: the paper's 1×1), validate, save; the numbers.

    The σ head starts at ``mean σ̂² = v0`` (the first training batch's true error variance); ``loss.lambda_sigma =
    "auto"`` means ``1 / v0²``. Result keys: ``v0``, the loss weights, ``head`` (its config), ``seconds``,
    ``parameters`` and, for ``init_val`` (before training), ``val`` and ``test`` (when ``job`` has one),
    ``<split>_<statistic>``.
    """
    started = time.perf_counter()
    train_range(operator)
    encoder = SeverityEncoder.from_latent_diffusion(model, head)
    v0, y = initial_error_variance(encoder, model, operator, job.train_set, loop.batch_size)
    encoder.init_head_scale(y, v0)
    loss = loss.resolve(v0)
    log.info("severity encoder: v0 = %.4g, lambda_sigma = %.4g, lambda_im = %.4g", v0, loss.lambda_sigma,
             loss.lambda_im)
    common = {"loss": loss, "max_images": max_val_images, "run": job.run}
    result: dict[str, Any] = {"v0": v0, **asdict(loss), "head": encoder.head.config()}
    result |= _prefixed("init_val", validate_severity(encoder, model, operator, job.val_set, step=0,
                                                      prefix="severity_init_val", **common))

    def watch(step: int, objective: nn.Module) -> None:
        """Validation numbers during training (the issue's advice: watch them)."""
        with torch.no_grad():
            validate_severity(objective.encoder.eval(), model, operator, job.val_set, step=step,
                              prefix="severity_val", **common)

    objective = fit(SeverityObjective(encoder, model, operator, loss), job.train_set, loop, job.workdir,
                    run=job.run, desc="severity", callback=watch)
    encoder = objective.encoder.eval()
    result |= _prefixed("val", validate_severity(encoder, model, operator, job.val_set, step=loop.steps,
                                                 prefix="severity_val", **common))
    if job.test_set is not None:
        result |= _prefixed("test", validate_severity(encoder, model, operator, job.test_set, step=loop.steps,
                                                      prefix="severity_test", **common))
    result |= {"seconds": time.perf_counter() - started, "parameters": sum(p.numel() for p in encoder.parameters())}
    about = {"class": type(operator).__name__,
             "settings": operator.extra_repr() if hasattr(operator, "extra_repr") else ""}
    encoder.save_pretrained(job.output_dir, metadata={"operator": about, "v0": v0, "lambda_sigma": loss.lambda_sigma,
                                                      "lambda_im": loss.lambda_im})
    arch = {k: v for k, v in encoder.config().items() if k != "autoencoder_config"}
    record_training(Path(job.output_dir), job.workdir, result, loop, arch)
    log.info("severity encoder saved to %s: %s", job.output_dir, json.dumps(result))
    if job.run is not None:
        job.run.summary.update({f"severity/{k}": v for k, v in result.items()})
    return result


def _prefixed(prefix: str, stats: dict[str, float]) -> dict[str, float]:
    """``{"<prefix>_<key>": value}``."""
    return {f"{prefix}_{k}": v for k, v in stats.items()}

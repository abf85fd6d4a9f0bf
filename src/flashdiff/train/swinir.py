"""Training of the SwinIR comparison (paper App. A) on pairs degraded on the fly: L1 between ``f(y)`` and ``x``.

``train_swinir`` is the trainer of ``python -m flashdiff.train train=swinir``: build the network, fit it with the
shared loop, validate (PSNR of the restoration and of the measurement itself), save it as ``solver=swinir`` loads it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from flashdiff.metrics import psnr
from flashdiff.solvers.swinir import SwinIRRestorer
from flashdiff.train.commands import record_training
from flashdiff.train.loop import LoopSettings, TrainingJob, fit
from flashdiff.train.severity import clean_batch
from flashdiff.types import Operator

log = logging.getLogger(__name__)


class SwinIRObjective(nn.Module):
    """``model(batch)`` -> ``{"loss": mean |f(y) - x|}`` for clean ``x`` (B, 3, H, W) in [0, 1] degraded on the fly.

    Each sample gets its own degradation drawn over the operator's training severity range plus its noise σ_y.
    """

    def __init__(self, network: SwinIRRestorer, op: Operator) -> None:
        super().__init__()
        self.network = network
        self.op = op

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The L1 loss (scalar) of the restoration of ``batch["x"]`` (B, 3, H, W), images in [0, 1]."""
        x = batch["x"]  # (B, 3, H, W) in [0, 1]
        with torch.no_grad():
            params = self.op.draw(None, tuple(x.shape), train=True)
            y = self.op.measure(x, params)
        return {"loss": (self.network(y) - x).abs().mean()}


@torch.no_grad()
def validate_swinir(network: SwinIRRestorer, op: Operator, dataset: Dataset, *, max_images: int | None = 100,
                    batch_size: int = 32, run: Any = None, step: int | None = None,
                    prefix: str = "swinir_val") -> dict[str, float]:
    """Mean over images of the PSNR of ``clamp(f(y), 0, 1)`` and of ``clamp(y, 0, 1)`` against ``x``, and of the L1.

    One degradation per image over the training range, seeded by the image, so every validation sees the same
    measurements. Logged under ``prefix/``.
    """
    was_training = network.training
    network.eval()
    device = next(network.parameters()).device
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    sums = {"psnr": 0.0, "psnr_input": 0.0, "l1": 0.0}
    for start in range(0, n, batch_size):
        x, seeds = clean_batch(dataset, start, min(start + batch_size, n), device)
        y = op.measure(x, op.draw(seeds, tuple(x.shape), train=True), seeds)
        x_hat = network(y)  # (B, 3, H, W)
        sums["psnr"] += psnr(x_hat.clamp(0, 1), x).sum().item()
        sums["psnr_input"] += psnr(y.clamp(0, 1), x).sum().item()
        sums["l1"] += (x_hat - x).abs().flatten(1).mean(1).sum().item()
    network.train(was_training)
    result = {k: v / n for k, v in sums.items()} | {"n_images": n}
    log.info("%s: %s", prefix, json.dumps({k: round(v, 4) for k, v in result.items()}))
    if run is not None:
        run.log({f"{prefix}/{k}": v for k, v in result.items()}, step=step)
    return result


def train_swinir(job: TrainingJob, *, arch: dict[str, Any], operator: Operator, loop: LoopSettings,
                 max_val_images: int | None = 100, identity_init: bool = False) -> dict[str, Any]:
    """Train SwinIR (``arch`` over the App. A defaults) on ``operator``'s degradations, validate, save; the numbers.

    ``identity_init`` (an option, not the paper's): zero SwinIR's last conv, so that through its global residual
    ``f(y) = y`` at step 0 and a short run starts from the measurement instead of from noise added to it.
    """
    started = time.perf_counter()
    torch.manual_seed(loop.seed)  # the initial weights
    network = SwinIRRestorer(arch)
    if identity_init:
        nn.init.zeros_(network.net.conv_last.weight)
        nn.init.zeros_(network.net.conv_last.bias)
    val = {"max_images": max_val_images, "run": job.run}

    def watch(step: int, objective: nn.Module) -> None:
        """Validation PSNR during training."""
        validate_swinir(objective.network, operator, job.val_set, step=step, **val)

    objective = fit(SwinIRObjective(network, operator), job.train_set, loop, job.workdir, run=job.run, desc="swinir",
                    callback=watch)
    network = objective.network.eval()
    scores = validate_swinir(network, operator, job.val_set, step=loop.steps, **val)
    result = {f"val_{k}": v for k, v in scores.items()} | {"identity_init": bool(identity_init),
                                                           "seconds": time.perf_counter() - started,
                                                           "parameters": sum(p.numel() for p in network.parameters())}
    about = {"class": type(operator).__name__,
             "settings": operator.extra_repr() if hasattr(operator, "extra_repr") else ""}
    network.save_pretrained(job.output_dir, metadata={"operator": about, "loss": "l1"})
    record_training(Path(job.output_dir), job.workdir, result, loop, network.arch)
    log.info("SwinIR saved to %s: %s", job.output_dir, json.dumps(result))
    if job.run is not None:
        job.run.summary.update({f"swinir/{k}": v for k, v in result.items()})
    return result

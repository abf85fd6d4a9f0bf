"""One training loop for every model of the project: accelerate, cosine LR, EMA, progress bar, checkpoints, resume."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


@dataclass
class LoopSettings:
    """Optimisation settings shared by every training command (``train.loop.*``)."""

    steps: int = 1000
    batch_size: int = 32  # global batch, split across processes
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0
    ema_decay: float | None = None
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    resume: bool = True
    num_workers: int = 0
    validate_every: int = 0  # call fit's ``callback`` every this many steps (0 = only at the end)


@dataclass
class TrainingJob:
    """What a trainer gets from its caller (the CLI: ``dataset``, ``train.output_dir``, ``train.workdir``, the
    logger): the splits, the folder the model is saved to, the folder of ``checkpoint/`` (resume) and the run.

    ``test`` may be a callable that builds the split; ``test_set`` calls it on first use, so only trainers that
    report test numbers read it.
    """

    train_set: Dataset
    val_set: Dataset
    output_dir: str | Path
    workdir: str | Path
    run: Any = None
    test: Dataset | Callable[[], Dataset] | None = None

    @property
    def test_set(self) -> Dataset | None:
        """The test split, or None when none was given."""
        if callable(self.test) and not isinstance(self.test, Dataset):
            self.test = self.test()
        return self.test


def _batches(loader: DataLoader) -> Iterator[dict[str, Any]]:
    """Cycle over the loader forever (a new shuffle per epoch)."""
    while True:
        yield from loader


def _save_checkpoint(ckpt: Path, step: int, seconds: float, model: nn.Module, ema: EMAModel | None, optimizer,
                     scheduler) -> None:
    """Weights as safetensors, optimiser/scheduler state as a plain tensor dict, written atomically."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    if ema is not None:
        save_file({f"p{k}": p.contiguous() for k, p in enumerate(ema.shadow_params)}, tmp / "ema.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "seconds": seconds}))
    if ckpt.exists():
        for f in ckpt.iterdir():
            f.unlink()
        ckpt.rmdir()
    os.replace(tmp, ckpt)


def _load_checkpoint(ckpt: Path, model: nn.Module, ema: EMAModel | None, optimizer, scheduler) -> tuple[int, float]:
    """Restore a checkpoint written by ``_save_checkpoint``; returns its step and training seconds so far.

    A checkpoint of another architecture (e.g. a rerun into the same run directory with other model options) is a
    ValueError that names the folder and the ways out, not a bare ``load_state_dict`` error.
    """
    weights = load_file(ckpt / "model.safetensors")
    own = model.state_dict()
    differ = sorted(set(own) ^ set(weights) | {k for k in set(own) & set(weights) if own[k].shape != weights[k].shape})
    if differ:
        raise ValueError(f"{ckpt} holds a checkpoint of another model ({len(differ)} parameter(s) differ in name or "
                         f"shape, e.g. {differ[0]!r}): it was written by a run with other model options. Train into "
                         f"a new run directory (hydra.run.dir=...), delete {ckpt}, or set train.loop.resume=false")
    model.load_state_dict(weights)
    if ema is not None and (ckpt / "ema.safetensors").exists():
        shadow = load_file(ckpt / "ema.safetensors")
        ema.shadow_params = [shadow[f"p{k}"] for k in range(len(shadow))]
    state = torch.load(ckpt / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    state = json.loads((ckpt / "state.json").read_text())
    return state["step"], state.get("seconds", 0.0)


def _with_ema(ema: EMAModel | None, params: list[nn.Parameter], action: Callable[..., None], *args: Any) -> None:
    """``action(*args)`` with the EMA weights swapped into ``params`` (as they will be returned), then swap back."""
    if ema is None:
        action(*args)
        return
    ema.store(params)
    ema.copy_to(params)
    try:
        action(*args)
    finally:
        ema.restore(params)


def fit(model: nn.Module, dataset: Dataset, settings: LoopSettings, workdir: str | Path, *, run: Any = None,
        desc: str = "train", callback: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Train ``model`` (``model(batch) -> {"loss": ..., other terms}``) for ``settings.steps`` steps.

    Returns the unwrapped model, with its EMA weights when ``ema_decay`` is set.
    Checkpoints go to ``workdir/checkpoint`` every ``checkpoint_every`` steps (``state.json``: the step and the
    training seconds so far); with ``resume`` a rerun continues from there. Works under ``accelerate launch``
    (data parallel) and as a plain single process. ``callback(step, model)`` (e.g. validation) runs on the main
    process every ``validate_every`` steps, with the EMA weights when ``ema_decay`` is set.
    """
    accelerator = Accelerator(cpu=not torch.cuda.is_available())  # without CUDA, cpu=True makes processes one group
    set_seed(settings.seed)
    per_process = max(1, settings.batch_size // accelerator.num_processes)
    log.info("%s: %d process(es) on %s, %d images per process per step", desc, accelerator.num_processes,
             accelerator.device, per_process)
    loader = DataLoader(dataset, batch_size=per_process, shuffle=True, drop_last=True,
                        num_workers=settings.num_workers, generator=torch.Generator().manual_seed(settings.seed))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, settings.warmup_steps, settings.steps)
    ema = EMAModel(trainable, decay=settings.ema_decay) if settings.ema_decay else None
    ckpt = Path(workdir) / "checkpoint"
    start, seconds = 0, 0.0
    if settings.resume and (ckpt / "state.json").exists():
        start, seconds = _load_checkpoint(ckpt, model, ema, optimizer, scheduler)
        log.info("resumed %s from %s at step %d", desc, ckpt, start)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    if ema is not None:
        ema.to(accelerator.device)
    batches = _batches(loader)
    bar = tqdm(range(start, settings.steps), initial=start, total=settings.steps, desc=desc,
               disable=not accelerator.is_main_process, dynamic_ncols=True)
    tic = time.perf_counter()
    for step in bar:
        model.train()
        losses: dict[str, Tensor] = model(next(batches))
        accelerator.backward(losses["loss"])
        if settings.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(trainable)
        if not math.isfinite(losses["loss"].item()):
            raise FloatingPointError(f"{desc}: loss is {losses['loss'].item()} at step {step}; lower train.loop.lr")
        if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
            scalars = {f"{desc}/{k}": v.item() for k, v in losses.items()} | {f"{desc}/lr": scheduler.get_last_lr()[0]}
            bar.set_postfix(loss=f"{losses['loss'].item():.4g}")
            if run is not None and accelerator.is_main_process:
                run.log(scalars, step=step + 1)
        due = settings.validate_every and (step + 1) % settings.validate_every == 0
        if callback is not None and due and accelerator.is_main_process:
            _with_ema(ema, trainable, callback, step + 1, accelerator.unwrap_model(model))
        if accelerator.is_main_process and ((step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps):
            _save_checkpoint(ckpt, step + 1, seconds + time.perf_counter() - tic, accelerator.unwrap_model(model), ema,
                             optimizer, scheduler)
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    if ema is not None:
        ema.copy_to(trainable)
    model.eval()
    log.info("%s finished %d steps (%s)", desc, settings.steps, json.dumps(asdict(settings)))
    return model

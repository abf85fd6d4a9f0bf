"""Hydra entry points ``python -m flashdiff`` and ``python -m flashdiff.train``; the only module seeing a DictConfig."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from flashdiff.paths import CONFIG_DIR  # registers the ${flashdiff_root:} resolver

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as torch understands it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device} but no CUDA device is visible; use device=cpu or device=auto")
    return torch.device(device)


def _start_logger(cfg: DictConfig, job_type: str):
    """A wandb run from the ``logger`` group, configured with the whole resolved config."""
    from flashdiff.distributed import is_main_process
    from flashdiff.tracking import start_run, sweep_group

    if not is_main_process():  # one wandb run per job, the main process's, however many processes share it
        import wandb

        return wandb.init(mode="disabled")
    config = OmegaConf.to_container(cfg, resolve=True)
    hc = hydra.core.hydra_config.HydraConfig.get()
    multirun = hc.mode.name == "MULTIRUN"  # runs of one sweep share a group: the sweep folder
    return start_run(cfg.logger.mode, cfg.logger.project, entity=cfg.logger.entity,
                     group=sweep_group(hc.mode.name, hc.sweep.dir, cfg.logger.group),
                     name=f"{hc.job.num}:{hc.job.override_dirname}" if multirun else None,
                     tags=list(cfg.logger.tags), job_type=job_type, config=config, directory=hc.runtime.output_dir)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Reconstruct the test set and write per-image records (see ``flashdiff.evaluate``); returns the summary's
    ``objective`` metric when the config names one (what a sweeper such as Optuna optimises)."""
    from flashdiff.distributed import process_device, rank_and_world
    from flashdiff.evaluate import evaluate
    from flashdiff.records import run_lock
    from flashdiff.select import objective

    if missing := sorted(OmegaConf.missing_keys(cfg)):  # e.g. the best eta of a greedy search's first stage
        raise ValueError(f"set {', '.join(missing)} on the command line (see the sweep file's header)")
    dataset = preflight(cfg)  # built once: the folder scan of a large dataset is not repeated below
    summary = _finished(cfg, len(dataset))
    if summary is None:
        out = Path(HydraConfig.get().runtime.output_dir)
        with run_lock(out, rank_and_world()[0]):  # one writer per run folder and process rank, before the logger
            run = _start_logger(cfg, "reconstruction")
            try:
                summary = evaluate(cfg=cfg, device=process_device(resolve_device(cfg.device)), run=run,
                                   dataset=dataset)
            finally:
                run.finish()
    return objective(summary, cfg.objective) if cfg.get("objective") else None


def preflight(cfg: DictConfig) -> Any:
    """The test dataset, after checking every input before any network, model or logger starts; fails naming
    *every* missing input at once: the dataset folder (its ``paths.*`` key) and the model (``model.path``, or
    ``pixel_model.path`` where an experiment's pixel DPS runs on its pixel model)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from flashdiff.diffusion.hub import ModelNotFoundError, resolve_model_path

    problems, dataset = [], None
    try:
        dataset = instantiate(cfg.dataset)
    except (InstantiationException, FileNotFoundError) as err:
        problems.append(f"dataset={HydraConfig.get().runtime.choices.get('dataset')}: {err.__cause__ or err}")
    if "path" in cfg.model:
        subfolders = [str(v) for k, v in cfg.model.items() if str(k).endswith("_subfolder") and v]
        # an experiment's pixel model (solver=dps: conf/tuned/<experiment>/dps_none.yaml sets model: ${pixel_model})
        key = "pixel_model" if OmegaConf.is_interpolation(cfg, "model") and "pixel_model" in cfg else "model"
        choice = HydraConfig.get().runtime.choices.get("model@pixel_model" if key == "pixel_model" else "model")
        try:
            resolve_model_path(str(cfg.model.path), subfolders, config_key=f"{key}.path")
        except ModelNotFoundError as err:
            problems.append(f"{key}={choice}: {err}")
    if problems:
        raise FileNotFoundError("missing inputs:\n- " + "\n- ".join(problems))
    return dataset


def _finished(cfg: DictConfig, size: int) -> dict | None:
    """The summary of this run folder when it already holds every image of this config (a restarted sweep's
    finished point, ``size`` = test images available), before any model or logger starts; None otherwise."""
    from flashdiff.select import finished_point

    expected = size if cfg.num_images is None else min(int(cfg.num_images), size)
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    summary = finished_point(out / "summary.json", expected, OmegaConf.to_container(cfg, resolve=True))
    if summary is not None:
        log.info("%s already holds all %d images of this config: skipped (delete its summary.json to redo it)",
                 out, expected)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def severity_study(cfg: DictConfig) -> None:
    """σ̂² of ``severity_encoder`` at a grid of severities × noise levels × noise seeds -> ``severity_study.csv``."""
    import json

    from hydra.utils import instantiate

    from flashdiff.metrics.severity_study import ordering_by_noise, severity_study, write_study
    from flashdiff.records import write_atomic
    from flashdiff.severity.encoder import SeverityEncoder

    study = {"noise_levels": [0.05], "n_levels": 10, "noise_seeds": 3, "num_images": 100, "severity_range": None}
    study |= OmegaConf.to_container(cfg.study, resolve=True) if "study" in cfg else {}
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    rows = severity_study(SeverityEncoder.from_pretrained(cfg.severity_encoder), instantiate(cfg.operator),
                          instantiate(cfg.dataset), device=resolve_device(cfg.device), **study)
    write_study(out / "severity_study.csv", rows)
    oa = {sigma: sum(v) / len(v) for sigma, v in ordering_by_noise([{k: str(v) for k, v in r.items()}
                                                                     for r in rows]).items()}
    info = {"severity_encoder": cfg.severity_encoder, "operator": _choice("operator"), "study": study,
            "ordering_accuracy_by_noise": oa}
    write_atomic(out / "study.json", json.dumps(info, indent=2) + "\n")
    log.info("ordering accuracy by test noise level: %s -> %s", json.dumps(oa), out / "severity_study.csv")


def _choice(group: str) -> str | None:
    """The option picked for a config group in this run (e.g. ``operator`` -> ``toy_blur_varying``)."""
    return hydra.core.hydra_config.HydraConfig.get().runtime.choices.get(group)


def trainer(train: DictConfig) -> tuple[Callable[..., Any], str, str]:
    """A training preset (``cfg.train``) as ``(trainer, output_dir, workdir)``: its function with every setting
    bound (operator, model, head, loop, ... instantiated; plain dicts and lists for the rest), called as
    ``trainer(job)``, and where the job writes."""
    from hydra.utils import instantiate

    settings = OmegaConf.to_container(train, resolve=True)
    out, workdir = settings.pop("output_dir"), settings.pop("workdir")  # where: the job's, not the trainer's
    return instantiate(settings, _convert_="all"), out, workdir


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="training")
def train(cfg: DictConfig) -> None:
    """Train with the preset ``train`` (conf/train/: a trainer function and its settings) on ``dataset``; the main
    process saves the model to ``train.output_dir``, checkpoints go to ``train.workdir``."""
    from hydra.utils import instantiate

    from flashdiff.distributed import is_main_process
    from flashdiff.train.loop import TrainingJob

    fit, out, workdir = trainer(cfg.train)
    train_set, val_set = instantiate(cfg.dataset), instantiate(cfg.dataset, split="val")
    scratch = None if is_main_process() else tempfile.mkdtemp(prefix="flashdiff-train-")
    out = out if scratch is None else scratch  # all processes train (data parallel), the main one writes the model
    run = _start_logger(cfg, f"train-{_choice('train')}")
    try:
        fit(TrainingJob(train_set, val_set, out, workdir, run=run, test=lambda: instantiate(cfg.dataset, split="test")))
    finally:
        run.finish()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

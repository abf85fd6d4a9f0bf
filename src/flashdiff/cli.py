"""Hydra entry points ``python -m flashdiff`` and ``python -m flashdiff.train``; the only module seeing a DictConfig."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from flashdiff.console import user_errors
from flashdiff.paths import CONFIG_DIR  # registers the ${flashdiff_root:} resolver

if TYPE_CHECKING:  # torch is imported where it is used: `--help` and the config checks stay fast
    import torch

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as torch understands it."""
    import torch

    from flashdiff.errors import ConfigError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={device} is not a device torch knows; use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA device is visible; use device=cpu or device=auto")
    return parsed


OUTPUT_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "paths.runs_dir")


def check_output_folder(argv: list[str]) -> None:
    """Before Hydra makes the run folder (and opens its log file there): a folder that is a file, or lies under a
    file or an unwritable folder, ends in one line naming the key, exit 2 (Hydra's own error is a traceback)."""
    import os
    import sys

    given = dict(a.lstrip("+~").split("=", 1) for a in argv if "=" in a and a.lstrip("+~").split("=", 1)[0] in
                 OUTPUT_KEYS)
    for key, value in (given or {"paths.runs_dir": "outputs"}).items():
        if "${" in value:
            continue  # an interpolation: Hydra resolves it
        folder = Path(value).expanduser()
        existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
        why = (f"{existing} is a file, not a folder" if existing.exists() and not existing.is_dir() else
               f"{existing} is not writable" if not os.access(existing, os.W_OK | os.X_OK) else None)
        if why:
            print(f"flashdiff: error: {key}={value}: {why}; give the run another folder ({key}=...)",
                  file=sys.stderr)
            sys.exit(2)


def _start_logger(cfg: DictConfig, job_type: str):
    """A wandb run from the ``logger`` group, configured with the whole resolved config."""
    from flashdiff.distributed import is_main_process
    from flashdiff.tracking import start_run, sweep_group

    if not is_main_process():  # one wandb run per job, the main process's, however many processes share it
        import wandb

        return wandb.init(mode="disabled", settings=wandb.Settings(silent=True))
    config = OmegaConf.to_container(cfg, resolve=True)
    hc = hydra.core.hydra_config.HydraConfig.get()
    multirun = hc.mode.name == "MULTIRUN"  # runs of one sweep share a group: the sweep folder
    return start_run(cfg.logger.mode, cfg.logger.project, entity=cfg.logger.entity,
                     group=sweep_group(hc.mode.name, hc.sweep.dir, cfg.logger.group),
                     name=f"{hc.job.num}:{hc.job.override_dirname}" if multirun else None,
                     tags=list(cfg.logger.tags), job_type=job_type, config=config, directory=hc.runtime.output_dir,
                     verbose=bool(cfg.logger.get("verbose", False)))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
@user_errors
def main(cfg: DictConfig) -> float | None:
    """Reconstruct the test set and write per-image records (see ``flashdiff.evaluate``); returns the summary's
    ``objective`` metric when the config names one (what a sweeper such as Optuna optimises)."""
    from flashdiff.errors import ConfigError

    if missing := sorted(OmegaConf.missing_keys(cfg)):  # e.g. the best eta of a greedy search's first stage
        raise ConfigError(f"set {', '.join(missing)} on the command line (see the sweep file's header)")
    resolve_device(cfg.device)  # a device torch does not know ends here, before anything loads
    solver = _checked_solver(cfg)  # ranges and compatibility, before any model loads
    dataset = preflight(cfg)  # built once: the folder scan of a large dataset is not repeated below
    config = result_config(cfg)
    from flashdiff.distributed import broadcast, rank_and_world  # the job's own modules, once the config is good
    from flashdiff.evaluate import claim_shared
    from flashdiff.records import repair_samples, run_lock
    from flashdiff.select import objective

    out = Path(HydraConfig.get().runtime.output_dir)
    rank = rank_and_world()[0]
    with run_lock(out, rank):  # one writer per run folder and process rank, before the logger
        dropped = broadcast(repair_samples(out / "samples.csv") if rank == 0 else 0)  # whether or not images remain
        summary = None if dropped else _finished(cfg, len(dataset), config)  # a repaired folder is summarised anew
        if summary is None:
            claim_shared(out, config, overwrite=bool(cfg.get("overwrite", False)))
            log.info("run folder %s", out)
            run = _start_logger(cfg, "reconstruction")
            try:
                summary = _reconstruct(cfg, out, dataset, solver, config, run)
            finally:
                run.finish()
    return objective(summary, cfg.objective) if cfg.get("objective") else None


def _checked_solver(cfg: DictConfig) -> Any:
    """The solver object (cheap; None for a restorer, which loads weights later) after every config check."""
    from hydra.utils import instantiate

    from flashdiff.validate import check_config

    restorer = str(cfg.solver.get("_target_", "")).endswith(".from_pretrained")
    choices = dict(HydraConfig.get().runtime.choices)
    return check_config(OmegaConf.to_container(cfg, resolve=True), choices,
                        None if restorer else lambda: instantiate(cfg.solver))


def _reconstruct(cfg: DictConfig, out: Path, dataset: Any, solver: Any, config: dict, run: Any) -> dict:
    """Build operator, model, adapter (and a restorer's network) on the device and run ``flashdiff.evaluate``."""
    from hydra.utils import instantiate

    from flashdiff.distributed import process_device
    from flashdiff.evaluate import RunSettings, evaluate
    from flashdiff.metrics import MetricSettings
    from flashdiff.records import fingerprint

    device = process_device(resolve_device(cfg.device))
    op = instantiate(cfg.operator).to(device)
    memory = OmegaConf.to_container(cfg.memory, resolve=True) if "memory" in cfg else {}
    cache = {"cache_dir": str(out)} if "cache_dir" in cfg.model and cfg.model.cache_dir is None else {}
    model = instantiate(cfg.model, **cache).to(device).configure(**memory, compile=bool(cfg.get("compile", False)))
    solver = solver if solver is not None else instantiate(cfg.solver).to(device).eval()
    adapter = instantiate(cfg.adapter).to(device).eval()
    if hasattr(solver, "check"):
        solver.check(model, op)
    engine = cfg.get("engine") or {}
    settings = RunSettings(num_images=cfg.num_images, batch_size=int(cfg.batch_size),
                           batching=str(cfg.get("batching", "continuous")),
                           order=str(engine.get("order", "longest_first")), lookahead=engine.get("lookahead"),
                           seed=int(cfg.seed), precision=config["precision"],
                           samples_per_image=int(cfg.get("samples_per_image", 1)))
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True) if "metrics" in cfg else {}
    choices = HydraConfig.get().runtime.choices
    info = {"method": _method_name(cfg), **{k: choices.get(k) for k in ("solver", "adapter", "operator", "dataset")},
            "config": OmegaConf.to_container(cfg, resolve=True), "fingerprint": fingerprint(config)}
    return evaluate(out, dataset, op, model, solver, adapter, settings=settings,
                    metric_settings=MetricSettings(**metrics), info=info, device=device, run=run)


def _method_name(cfg: DictConfig) -> str:
    """``adapter(solver)``, e.g. ``flash(latent_dps)``: the options picked for the two groups."""
    choices = HydraConfig.get().runtime.choices
    return f"{choices.get('adapter')}({choices.get('solver')})"


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
        subfolders = {str(k): str(v) for k, v in cfg.model.items() if str(k).endswith("_subfolder") and v}
        # an experiment's pixel model (solver=dps: conf/tuned/<experiment>/dps_none.yaml sets model: ${pixel_model})
        key = "pixel_model" if OmegaConf.is_interpolation(cfg, "model") and "pixel_model" in cfg else "model"
        choice = HydraConfig.get().runtime.choices.get("model@pixel_model" if key == "pixel_model" else "model")
        folders = {"path": list(subfolders.values())}
        if cfg.model.get("autoencoder_path"):  # the autoencoder from another folder (model=toy_flow: toy_ldm's)
            ae = subfolders.get("autoencoder_subfolder", "vae")
            folders = {"path": [s for s in subfolders.values() if s != ae], "autoencoder_path": [ae]}
        for field, needs in folders.items():
            try:
                resolve_model_path(str(cfg.model[field]), needs, config_key=f"{key}.{field}",
                                   hub_id=cfg.model.get("hub_id") if field == "path" else None)
            except ModelNotFoundError as err:
                problems.append(f"{key}={choice}: {err}")
    problems += _missing_folders(cfg)
    if problems:
        from flashdiff.errors import InputError

        raise InputError("missing inputs: " + "; ".join(problems))
    return dataset


def _missing_folders(cfg: DictConfig) -> list[str]:
    """Weight folders the adapter or solver will load (``severity_encoder``, ``solver.folder``) that are not there."""
    from flashdiff.weights import CONFIG_NAME, WEIGHTS_NAME

    wanted = {"severity_encoder": OmegaConf.select(cfg, "adapter.encoder.folder"),
              "solver.folder": OmegaConf.select(cfg, "solver.folder")}
    how = {"severity_encoder": "train one with `python -m flashdiff.train train=severity_blur` or point "
                               "severity_encoder at one",
           "solver.folder": "train one with `python -m flashdiff.train train=swinir` or point solver.folder at one"}
    return [f"{key}={folder}: no {CONFIG_NAME} + {WEIGHTS_NAME} there; {how[key]}" for key, folder in wanted.items()
            if folder and not ((Path(folder) / CONFIG_NAME).exists() and (Path(folder) / WEIGHTS_NAME).exists())]


def result_config(cfg: DictConfig) -> dict[str, Any]:
    """The part of the resolved config that decides an image's result (``RESULT_NEUTRAL`` keys dropped, precision
    resolved for this machine): what a run folder's records are keyed to."""
    from flashdiff.precision import resolve_precision
    from flashdiff.records import RESULT_NEUTRAL

    config = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in RESULT_NEUTRAL}
    config["precision"] = resolve_precision(str(cfg.get("precision", "fp32")), resolve_device(cfg.device))
    return config


def _finished(cfg: DictConfig, size: int, config: dict[str, Any]) -> dict | None:
    """The summary of this run folder when it already holds every image of this config (a restarted sweep's
    finished point, ``size`` = test images available), before any model or logger starts; None otherwise."""
    from flashdiff.records import fingerprint
    from flashdiff.select import finished_point

    expected = size if cfg.num_images is None else min(int(cfg.num_images), size)
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    summary = finished_point(out / "summary.json", expected, fingerprint(config))
    if summary is not None:
        log.info("%s already holds all %d images of this config: skipped (delete its summary.json to redo it)",
                 out, expected)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
@user_errors
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
@user_errors
def rank(cfg: DictConfig) -> None:
    """Rank the test images by σ̂² of ``severity_encoder`` (and of their noise-only measurement x + n, paper Fig. 5)
    -> ``ranking.csv``, ``ranking.json``, ``contact_sheet.png`` in the run folder (``flashdiff.report.ranking``)."""
    from hydra.utils import instantiate

    from flashdiff.paths import ROOT
    from flashdiff.records import provenance
    from flashdiff.report.ranking import check_settings, load_encoder, rank_dataset

    settings = {"k": 8, "tile": 128} | (OmegaConf.to_container(cfg.rank, resolve=True) if "rank" in cfg else {})
    if unknown := sorted(set(settings) - {"k", "tile"}):
        from flashdiff.errors import ConfigError

        raise ConfigError(f"rank.{unknown[0]}: unknown setting; +rank.k (images per band) and +rank.tile (pixels)")
    check_settings(cfg.num_images, cfg.batch_size, settings["k"], settings["tile"])
    encoder = load_encoder(cfg.severity_encoder)
    device = resolve_device(cfg.device)
    info = {**provenance(ROOT), "severity_encoder": str(cfg.severity_encoder), "dataset": _choice("dataset"),
            "operator": _choice("operator"), "rank": settings, "config": OmegaConf.to_container(cfg, resolve=True)}
    rank_dataset(Path(HydraConfig.get().runtime.output_dir), encoder, instantiate(cfg.operator).to(device),
                 instantiate(cfg.dataset), num_images=cfg.num_images, batch_size=cfg.batch_size, seed=int(cfg.seed),
                 device=device, k=settings["k"], tile=settings["tile"], info=info)


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
@user_errors
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

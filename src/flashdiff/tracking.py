"""Experiment tracking through wandb (online, offline or disabled), configured by the ``logger`` config group."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start_run(mode: str, project: str, *, name: str | None = None, group: str | None = None,
              job_type: str | None = None, config: dict[str, Any] | None = None, directory: str | Path = ".",
              entity: str | None = None, tags: list[str] | None = None, verbose: bool = False) -> Any:
    """A wandb run (``mode`` online/offline/disabled); ``WANDB_MODE`` in the environment wins, as wandb documents.
    wandb's own console output is silenced except online or with ``verbose`` (``logger.verbose=true``)."""
    import wandb

    if mode not in ("online", "offline", "disabled"):
        raise ValueError(f"logger.mode must be online, offline or disabled, got {mode!r}")
    effective = os.environ.get("WANDB_MODE", mode)
    Path(directory).mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(silent=not (verbose or effective == "online"))
    run = wandb.init(project=project, entity=entity, name=name, group=group, job_type=job_type, config=config,
                     dir=str(directory), mode=effective, tags=tags, reinit="finish_previous", settings=settings)
    if effective == "offline":
        log.debug("wandb offline run in %s (upload later with `wandb sync`)", run.dir)
    return run


def sweep_group(mode: str, sweep_dir: str | Path | None, group: str | None) -> str | None:
    """The wandb group of a run: ``logger.group`` when set, else the sweep folder of a Hydra multirun (``-m``)."""
    if group:
        return group
    return str(sweep_dir) if mode == "MULTIRUN" and sweep_dir else None


THUMBNAILS = ("images", "clean", "measurements")  # reconstruction | clean | measurement, as the run folder holds them


def log_reconstruction(run: Any, summary: dict[str, Any], rows: list[dict[str, str]], out: Path) -> None:
    """Send one reconstruction run to wandb: its numeric summary, the per-image table with thumbnails (reconstruction,
    clean, measurement) and the histogram of Flash's start steps ``t_start`` (paper Fig. 7, bottom)."""
    import wandb

    scalars = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    table = wandb.Table(columns=[*rows[0].keys(), "reconstruction", "clean", "measurement"] if rows else [])
    for r in rows:
        files = [Path(out) / folder / f"{int(r['index']):05d}.png" for folder in THUMBNAILS]
        table.add_data(*r.values(), *(wandb.Image(str(f)) if f.exists() else None for f in files))
    starts = [int(r["t_start"]) for r in rows if r.get("t_start") not in (None, "")]
    extra = {"t_start": wandb.Histogram(starts)} if starts else {}
    run.log(scalars | {"samples": table} | extra)
    run.summary.update({"unavailable": summary.get("unavailable", {})})

"""Experiment tracking through wandb (online, offline or disabled), configured by the ``logger`` config group."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start_run(mode: str, project: str, *, name: str | None = None, group: str | None = None,
              job_type: str | None = None, config: dict[str, Any] | None = None, directory: str | Path = ".",
              entity: str | None = None, tags: list[str] | None = None) -> Any:
    """A wandb run (``mode`` online/offline/disabled); ``WANDB_MODE`` in the environment wins, as wandb documents."""
    import wandb

    if mode not in ("online", "offline", "disabled"):
        raise ValueError(f"logger.mode must be online, offline or disabled, got {mode!r}")
    effective = os.environ.get("WANDB_MODE", mode)
    Path(directory).mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, entity=entity, name=name, group=group, job_type=job_type, config=config,
                     dir=str(directory), mode=effective, tags=tags, reinit="finish_previous")
    if effective == "offline":
        log.info("wandb offline run in %s (upload later with `wandb sync`)", run.dir)
    return run

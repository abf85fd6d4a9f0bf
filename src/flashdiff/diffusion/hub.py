"""Where model weights come from: a local folder, or a hub id resolved only from the local cache when offline."""

from __future__ import annotations

import os
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """A model folder or hub id that cannot be loaded here, with how to provide it."""


def resolve_model_path(path_or_id: str, subfolders: list[str], config_key: str = "model.path") -> Path:
    """A local folder holding ``subfolders``, downloading a hub id first (fails at once when offline)."""
    local = Path(path_or_id).expanduser()
    if local.exists():
        configs = ("config.json", "scheduler_config.json")  # models, schedulers
        missing = [s for s in subfolders if not any((local / s / c).exists() for c in configs)]
        if missing:
            raise ModelNotFoundError(f"{config_key}={path_or_id}: the folder lacks {missing} (each needs a config.json "
                                     "or scheduler_config.json as written by save_pretrained)")
        return local
    if path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") != 1:
        raise ModelNotFoundError(f"{config_key}={path_or_id}: no such folder (for a bundled toy model run "
                                 "`make toy-models`; otherwise give a folder written by save_pretrained or a hub id)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        return Path(snapshot_download(path_or_id, allow_patterns=[f"{s}/*" for s in subfolders],
                                      local_files_only=offline))
    except (LocalEntryNotFoundError, OSError) as err:
        raise ModelNotFoundError(
            f"{config_key}={path_or_id}: the model is not in the local Hugging Face cache and cannot be downloaded "
            f"({'HF_HUB_OFFLINE=1' if offline else type(err).__name__}). Pre-download it on a machine with network: "
            f"`huggingface-cli download {path_or_id}` (then copy ~/.cache/huggingface), or set {config_key} to a "
            "local folder.") from err

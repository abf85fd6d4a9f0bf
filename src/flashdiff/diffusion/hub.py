"""Where model weights come from: a local folder, or a hub id resolved only from the local cache when offline."""

from __future__ import annotations

import os
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """A model folder or hub id that cannot be loaded here, with how to provide it."""


RECIPES = {  # folder name under paths.models_dir -> (the command that writes it, where its input comes from)
    "toy_ldm": ("make toy-models", ""),
    "toy_pixel_ddpm": ("make toy-models", ""),
    "ldm_lsun_bedrooms256": ("python -m flashdiff.convert ldm --ckpt <unzipped>/model.ckpt --out {folder}",
                             " (model.ckpt + config.yaml from https://ommer-lab.com/files/latent-diffusion/"
                             "lsun_bedrooms.zip)"),
}
CONFIGS = ("config.json", "scheduler_config.json")  # what save_pretrained writes for models and schedulers


def how_to_get(folder: Path, hub_id: str | None = None) -> str:
    """The command that writes ``folder``: the download of ``hub_id`` (a text-to-image prior's snapshot, its preset's
    ``model.hub_id``), the recipe of its name (``RECIPES``), or the generic ways to get a model."""
    if hub_id:
        return (f"download it with `hf download {hub_id} --local-dir {folder}` (gated models: accept the licence on "
                f"the model's hub page and `hf auth login` first), then model.path={folder}")
    if folder.name in RECIPES:
        command, source = RECIPES[folder.name]
        return f"create it with `{command.format(folder=folder)}`{source}"
    return ("give a folder written by save_pretrained (`python -m flashdiff.train ...`), one written by "
            "`python -m flashdiff.convert ldm --ckpt <model.ckpt> --out <folder>`, or a hub id")


def _missing_subfolders(root: Path, subfolders: list[str]) -> list[str]:
    return [s for s in subfolders if not any((root / s / c).exists() for c in CONFIGS)]


def check_configs(root: Path, subfolders: list[str], config_key: str) -> None:
    """Every ``config.json`` / ``scheduler_config.json`` of the model's subfolders parses as JSON; else an
    ``InputError`` naming the file and the position."""
    import json

    from flashdiff.errors import InputError

    for path in (root / s / c for s in subfolders for c in CONFIGS):
        if not path.exists():
            continue
        try:
            json.loads(path.read_text())
        except UnicodeDecodeError as err:
            raise InputError(f"{config_key}: {path} is not text ({err.reason} at byte {err.start}); replace the "
                             "model folder") from err
        except json.JSONDecodeError as err:
            raise InputError(f"{config_key}: {path} is not valid JSON ({err.msg} at line {err.lineno}, column "
                             f"{err.colno}); fix or replace it (save_pretrained writes it)") from err


def resolve_model_path(path_or_id: str, subfolders: list[str], config_key: str = "model.path",
                       hub_id: str | None = None) -> Path:
    """A local folder holding ``subfolders`` with readable configs, downloading a hub id first (fails at once when
    offline); ``hub_id``: what a missing folder is downloaded from (named in the error)."""
    local = Path(path_or_id).expanduser()
    if local.exists():
        missing = _missing_subfolders(local, subfolders)
        if missing:
            raise ModelNotFoundError(f"{config_key}={path_or_id}: the folder lacks {missing} (each needs a config.json "
                                     "or scheduler_config.json as written by save_pretrained); "
                                     f"{how_to_get(local, hub_id)}")
        check_configs(local, subfolders, config_key)
        return local
    if path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") != 1:
        raise ModelNotFoundError(f"{config_key}={path_or_id}: no such folder ({local.resolve()}); "
                                 f"{how_to_get(local, hub_id)}")
    from flashdiff.paths import MODELS_DIR

    if (MODELS_DIR / local.name).is_dir():  # a bundled toy model named relative to another working directory
        raise ModelNotFoundError(f"{config_key}={path_or_id}: no such folder ({local.resolve()}); the bundled toy "
                                 f"model {local.name} is {MODELS_DIR / local.name} (in Python: "
                                 f"flashdiff.toy.model_dir({local.name!r}))")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    try:
        root = Path(snapshot_download(path_or_id, allow_patterns=[f"{s}/*" for s in subfolders],
                                      local_files_only=offline))
    except (LocalEntryNotFoundError, OSError) as err:
        raise ModelNotFoundError(
            f"{config_key}={path_or_id}: no such folder ({local.resolve()}), and as a hub id the model is not in the "
            f"local Hugging Face cache and cannot be downloaded "
            f"({'HF_HUB_OFFLINE=1' if offline else type(err).__name__}). Pre-download it on a machine with network: "
            f"`hf download {path_or_id}` (older huggingface_hub: `huggingface-cli download {path_or_id}`; in Python "
            f"`huggingface_hub.snapshot_download('{path_or_id}')`), then copy the cache (HF_HOME, default "
            f"~/.cache/huggingface) here; or download it into a folder (`hf download {path_or_id} --local-dir DIR`) "
            f"and set {config_key}=DIR.") from err
    missing = _missing_subfolders(root, subfolders)
    if missing:
        raise ModelNotFoundError(f"{config_key}={path_or_id}: the hub snapshot at {root} lacks {missing}; check the "
                                 "model's subfolder keys (e.g. model.autoencoder_subfolder)")
    check_configs(root, subfolders, config_key)
    return root

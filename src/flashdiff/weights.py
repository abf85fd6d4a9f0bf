"""Project-trained networks on disk: ``<folder>/model.safetensors`` plus a json ``config.json`` that rebuilds them.

No pickle anywhere: weights are safetensors, the architecture is plain json read back by the owning class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_folder(folder: str | Path, module: nn.Module, config: dict[str, Any],
                metadata: dict[str, Any] | None = None) -> None:
    """Write ``module``'s weights and ``config`` (plus optional ``metadata``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, folder / WEIGHTS_NAME)
    config = config | ({"metadata": metadata} if metadata else {})
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def read_folder(folder: str | Path, missing: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config, state_dict)`` of a folder written by ``save_folder``; FileNotFoundError ``missing`` if absent.

    ``missing`` should name the config key that points here and how to get a model.
    """
    from flashdiff.errors import InputError

    folder = Path(folder)
    if not (folder / CONFIG_NAME).exists() or not (folder / WEIGHTS_NAME).exists():
        raise InputError(f"{missing} (looked for {CONFIG_NAME} + {WEIGHTS_NAME} in {folder})")
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{folder / CONFIG_NAME}: cannot be read as JSON ({err}); replace the folder") from err
    try:
        weights = load_file(folder / WEIGHTS_NAME)
    except Exception as err:  # noqa: BLE001 -- safetensors raises its own error types for a damaged file
        raise InputError(f"{folder / WEIGHTS_NAME}: not readable as safetensors ({err}); replace the folder") from err
    return config, weights


class FolderSaved:
    """Mixin for an ``nn.Module`` with ``config() -> dict``: ``save_pretrained`` writes it with ``save_folder``."""

    def save_pretrained(self, folder: str | Path, metadata: dict[str, Any] | None = None) -> None:
        """Write ``<folder>/model.safetensors`` and ``<folder>/config.json`` (plus optional ``metadata``)."""
        save_folder(folder, self, self.config(), metadata)

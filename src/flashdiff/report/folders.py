"""The one reader of run folders, for ``select``, the report and the CLI's finished-run check.

A run folder holds what ``python -m flashdiff`` leaves (``summary.json``, ``samples.csv``, ``run.json``) and what
Hydra leaves (``.hydra/overrides.yaml``, ``.hydra/config.yaml``); a training point holds ``training.json`` (in its
``model/`` folder) instead of a summary. Everything is read from files, never from memory: an unreadable summary
counts as absent, a damaged ``samples.csv`` row is dropped (``flashdiff.records``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from flashdiff.errors import InputError, RecordError
from flashdiff.records import read_samples, read_summary

R = TypeVar("R", bound="RunFolder")
RECORDS = ("summary.json", "training.json")
"""The files that make a folder a run: a reconstruction's summary, else a training point's record."""


@dataclass
class RunFolder:
    """One run: its folder, its summary (``{}`` when absent or unreadable), the command-line overrides it was run
    with (``arguments`` as typed, ``overrides`` as ``key -> value text`` with ``+``/``++`` dropped), and its
    ``samples.csv`` rows, read on first use."""

    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)
    _rows: list[dict[str, str]] | None = field(default=None, repr=False)

    @classmethod
    def read(cls: type[R], folder: str | Path, record: str | Path | None = None) -> R:
        """The run in ``folder``; ``record`` is its summary (default ``folder/summary.json``) or a training.json."""
        folder = Path(folder)
        summary = read_summary(record or folder / "summary.json") or {}
        return cls(folder, summary, _arguments(folder))

    @property
    def overrides(self) -> dict[str, str]:
        """``key -> value text`` of the command-line overrides (``+``/``++`` prefixes dropped)."""
        pairs = (a.split("=", 1) for a in self.arguments if "=" in a)
        return {key.lstrip("+"): value for key, value in pairs}

    @property
    def rows(self) -> list[dict[str, str]]:
        """Rows of ``samples.csv`` (damaged rows dropped); a file of an older column set is read as it is."""
        if self._rows is None:
            self._rows = _rows(self.folder / "samples.csv")
        return self._rows

    def get(self, key: str, default: Any = None) -> Any:
        """A summary value."""
        return self.summary.get(key, default)

    def config(self, *keys: str, default: Any = None) -> Any:
        """A value of the run's config, e.g. ``run.config("operator", "noise_std")``: the summary's resolved config,
        else ``run.json``'s (result-relevant keys only), else Hydra's ``.hydra/config.yaml`` (unresolved)."""
        node: Any = self.summary.get("config") or _config_file(self.folder)
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return default
            node = node[k]
        return node

    @property
    def n_failed(self) -> int:
        """Images whose reconstruction or metrics were not finite (summary ``n_failed``; 0 for older summaries)."""
        return int(self.summary.get("n_failed") or 0)


def _arguments(folder: Path) -> list[str]:
    """The overrides of ``.hydra/overrides.yaml`` as typed (``[]`` without one)."""
    path = folder / ".hydra" / "overrides.yaml"
    if not path.exists():
        return []
    try:
        items = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path} is unreadable ({err}); remove the run folder or restore the file") from None
    return [str(item) for item in items]


def _config_file(folder: Path) -> dict[str, Any]:
    """The config of ``run.json``, else of ``.hydra/config.yaml``; ``{}`` when neither can be read."""
    for path, load in ((folder / "run.json", lambda t: json.loads(t)["config"]),
                       (folder / ".hydra" / "config.yaml", yaml.safe_load)):
        try:
            config = load(path.read_text()) if path.exists() else None
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
            config = None
        if isinstance(config, dict):
            return config
    return {}


def _rows(path: Path) -> list[dict[str, str]]:
    """``read_samples``; a file of an older column set (an earlier version's run) through ``csv.DictReader``, rows
    with a field too many or too few dropped."""
    try:
        return read_samples(path)
    except RecordError:
        with open(path, newline="") as f:
            return [r for r in csv.DictReader(f) if None not in r and None not in r.values()]


def run_dir(record: Path) -> Path:
    """The run folder of a record: a summary's own folder; for a training point's ``model/training.json``, the
    nearest folder above it holding Hydra's ``.hydra`` (else the record's own folder)."""
    if record.name == "summary.json":
        return record.parent
    return next((d for d in record.parents if (d / ".hydra").is_dir()), record.parent)


def find_runs(path: str | Path, records: tuple[str, ...] = RECORDS, kind: type[R] = RunFolder) -> list[R]:
    """Every run under ``path`` (a folder, itself included, or a record file) as ``kind``, in folder order: by the
    first of ``records`` found below it; ``[]`` when there is none. ``InputError`` when ``path`` does not exist."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        return [kind.read(run_dir(path), path)] if path.name in records else []
    for name in records:
        if files := sorted(path.rglob(name)):
            return [kind.read(run_dir(f), f) for f in files]
    return []


def finished_point(summary_file: str | Path, expected: int, fingerprint: str) -> dict[str, Any] | None:
    """The summary of a run folder already finished with ``expected`` images of the config with ``fingerprint``
    (``flashdiff.records.fingerprint``), else None: a restarted sweep skips such a point without loading any model.
    An unreadable summary.json counts as absent (with a warning): the point is recomputed."""
    summary = read_summary(summary_file)
    if summary is None or summary.get("n_images") != expected or summary.get("fingerprint") != fingerprint:
        return None
    return summary

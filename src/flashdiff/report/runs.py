"""Run records as the report reads them: ``summary.json`` + ``samples.csv`` of single runs and multiruns, and the
``severity_study.csv`` files of ``python -m flashdiff.severity_study`` -- always from files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOLVER_NAMES = {"latent_dps": "Latent-DPS", "latent_dps_ddim": "Latent-DPS (DDIM)", "gml_dps": "GML-DPS",
                "psld": "PSLD", "resample": "ReSample", "dps": "DPS", "ddim": "DDIM", "ddpm": "DDPM",
                "swinir": "SwinIR"}
FLASH_ADAPTERS = ("flash", "flash_ddim_encoding")
FIXED_ADAPTERS = ("fixed", "fixed_e0")


@dataclass
class Run:
    """One reconstruction run: its summary, folder and overrides; ``rows`` (samples.csv) read on first use."""

    summary: dict[str, Any]
    folder: Path
    overrides: str = ""
    _rows: list[dict[str, str]] | None = field(default=None, repr=False)

    @property
    def rows(self) -> list[dict[str, str]]:
        """Rows of ``samples.csv`` (any column set, so older runs read too); empty when there is none."""
        if self._rows is None:
            path = self.folder / "samples.csv"
            self._rows = []
            if path.exists():
                with open(path, newline="") as f:
                    self._rows = list(csv.DictReader(f))
        return self._rows

    def get(self, key: str, default: Any = None) -> Any:
        """A summary value."""
        return self.summary.get(key, default)

    def config(self, *keys: str, default: Any = None) -> Any:
        """A value of the run's resolved config, e.g. ``run.config("operator", "noise_std")``."""
        node: Any = self.summary.get("config") or {}
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return default
            node = node[k]
        return node

    @property
    def adapter(self) -> str:
        """The adapter option (``flash``, ``none``, ``fixed``, ...)."""
        return str(self.summary.get("adapter") or self.summary.get("method", "?(").split("(")[0])

    @property
    def noise_std(self) -> float | None:
        """The test noise level σ_y of the operator."""
        value = self.config("operator", "noise_std")
        return None if value is None else float(value)

    @property
    def encoder(self) -> str:
        """The severity encoder's folder name (empty when the adapter uses none)."""
        return Path(str(self.summary.get("config", {}).get("severity_encoder") or "")).name \
            if self.adapter not in ("none",) else ""

    def column(self, key: str) -> list[float | None]:
        """A numeric column of ``samples.csv``; None for empty cells."""
        return [float(r[key]) if r.get(key) not in (None, "") else None for r in self.rows]


def method_label(run: Run) -> str:
    """The paper's name of a run's method: ``Latent-DPS``, ``Flash(Latent-DPS)``, ``Fixed i'=50 (Latent-DPS)``..."""
    solver = SOLVER_NAMES.get(str(run.get("solver")), str(run.get("solver")))
    adapter = run.adapter
    if adapter == "none":
        return solver
    if adapter == "flash":
        return f"Flash({solver})"
    if adapter == "flash_ddim_encoding":
        return f"Flash-DDIM-enc({solver})"
    if adapter in FIXED_ADAPTERS:
        start = run.config("adapter", "start")
        return f"Fixed{'-E0' if adapter == 'fixed_e0' else ''} i'={start} ({solver})"
    if adapter == "ae":
        return "AE"
    return str(run.get("method"))


RESULT_KEYS = ("dataset", "operator", "model", "solver", "adapter", "severity_encoder", "seed", "num_images")


def unique(runs: list[Run]) -> list[Run]:
    """The runs less repeats of one experiment (same resolved dataset, operator, model, solver, adapter, encoder,
    seed and image count, e.g. the same Flash run made by two studies); the first one found is kept."""
    seen, out = set(), []
    for run in runs:
        config = run.summary.get("config")
        key = json.dumps({k: config.get(k) for k in RESULT_KEYS}, sort_keys=True) if config else str(run.folder)
        if key not in seen:
            seen.add(key)
            out.append(run)
    return out


def collect(paths: list[str | Path]) -> tuple[list[Run], list[Path]]:
    """Every run (``summary.json``) and severity study (``severity_study.csv``) under the given folders or files."""
    runs, studies = [], []
    for path in map(Path, paths):
        if path.is_file():
            found = [path]
        else:
            found = sorted([*path.rglob("summary.json"), *path.rglob("severity_study.csv")])
        if not found:
            raise FileNotFoundError(f"{path}: no summary.json or severity_study.csv (is it a flashdiff run, multirun "
                                    "or severity study folder?)")
        for f in found:
            if f.name == "severity_study.csv":
                studies.append(f)
                continue
            overrides = f.parent / ".hydra" / "overrides.yaml"
            changed = [line[2:].strip() for line in overrides.read_text().splitlines() if line.startswith("- ")] \
                if overrides.exists() else []
            runs.append(Run(json.loads(f.read_text()), f.parent, " ".join(changed)))
    return runs, studies

"""Run records as the report reads them: ``summary.json`` + ``samples.csv`` of single runs and multiruns (through
``flashdiff.report.folders``), and the ``severity_study.csv`` files of ``python -m flashdiff.severity_study`` -- always
from files."""

from __future__ import annotations

import json
from pathlib import Path

from flashdiff.errors import InputError
from flashdiff.report.folders import RunFolder, find_runs

SOLVER_NAMES = {"latent_dps": "Latent-DPS", "latent_dps_ddim": "Latent-DPS (DDIM)", "gml_dps": "GML-DPS",
                "psld": "PSLD", "resample": "ReSample", "dps": "DPS", "ddim": "DDIM", "ddpm": "DDPM",
                "swinir": "SwinIR"}
FLASH_ADAPTERS = ("flash", "flash_ddim_encoding")
FIXED_ADAPTERS = ("fixed", "fixed_e0")


class Run(RunFolder):
    """One reconstruction run (``RunFolder``) with what the report reads off it: adapter, σ_y, severity encoder,
    fixed start, numeric ``samples.csv`` columns."""

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
        return Path(str(self.config("severity_encoder") or "")).name if self.adapter not in ("none",) else ""

    @property
    def t_start(self) -> int | None:
        """The fixed start step i' of a fixed-start run (``adapter.t_start``; ``adapter.start`` in older runs)."""
        value = self.config("adapter", "t_start", default=self.config("adapter", "start"))
        return None if value is None else int(value)

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
        return f"Fixed{'-E0' if adapter == 'fixed_e0' else ''} i'={run.t_start} ({solver})"
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
    """Every run (``summary.json``; unreadable ones skipped with a warning) and severity study
    (``severity_study.csv``) under the given folders or files; ``InputError`` naming a path that holds neither."""
    runs, studies = [], []
    for path in map(Path, paths):
        found = find_runs(path, ("summary.json",), kind=Run)
        found_studies = [path] if path.name == "severity_study.csv" else (
            sorted(path.rglob("severity_study.csv")) if path.is_dir() else [])
        if not found and not found_studies:
            raise InputError(f"{path}: no summary.json or severity_study.csv (is it a flashdiff run, multirun or "
                             "severity study folder?)")
        runs += [r for r in found if r.summary]
        studies += found_studies
    return runs, studies

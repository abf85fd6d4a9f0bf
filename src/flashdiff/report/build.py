"""The whole report: Table 1 (markdown + CSV), every figure whose inputs exist, and ``report.md`` listing what was
drawn and, for what was not, why."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from flashdiff.records import write_atomic
from flashdiff.report.plots import NoDataError
from flashdiff.report.quality_figures import gallery, noise_robustness, quality_vs_steps
from flashdiff.report.runs import Run, collect, unique
from flashdiff.report.severity_figures import contributors, ordering_vs_noise, sigma_vs_severity, start_histogram
from flashdiff.report.table import table1

log = logging.getLogger(__name__)


def _figures(runs: list[Run], studies: list[Path], out: Path) -> dict[str, Callable[[], object]]:
    """Each figure of the report, by the paper's name, as a call that draws it (or raises ``NoDataError``)."""
    return {
        "Fig. 4 σ̂ vs true severity": lambda: sigma_vs_severity(runs, out),
        "Fig. 5 severity contributors": lambda: contributors(runs, out),
        "Fig. 6 gallery (easy / median / hard by σ̂)": lambda: gallery(runs, out),
        "Fig. 7 top quality vs mean steps (fixed starts + Flash)": lambda: quality_vs_steps(runs, out),
        "Fig. 7 bottom start-step histogram": lambda: start_histogram(runs, out),
        "Fig. 8 Flash vs baselines across test noise": lambda: noise_robustness(runs, out),
        "Fig. 10 ordering accuracy vs test noise": lambda: ordering_vs_noise(studies, out),
    }


def build_report(paths: list[str | Path], out: str | Path) -> Path:
    """Read the runs and studies under ``paths``, write tables, figures and ``report.md`` into ``out``; returns it."""
    runs, studies = collect(paths)  # a path without runs fails here, before the report folder exists
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if len(distinct := unique(runs)) < len(runs):
        log.info("%d runs repeat an experiment already read (same config); each is counted once",
                 len(runs) - len(distinct))
    runs = distinct
    sections = [f"# flashdiff report\n\n{len(runs)} runs, {len(studies)} severity studies from: "
                + ", ".join(f"`{p}`" for p in paths) + "\n"]
    if runs:
        markdown, csv_text = table1(runs)
        write_atomic(out / "table1.md", markdown)
        write_atomic(out / "table1.csv", csv_text)
        sections.append("## Table 1\n\n" + markdown)
    drawn, skipped = [], []
    for name, draw in _figures(runs, studies, out).items():
        try:
            result = draw()
        except NoDataError as why:
            log.info("skipped %s: %s", name, why)
            skipped.append(f"- {name}: {why}")
            continue
        files, notes = result if isinstance(result, tuple) else (result, [])
        log.info("%s -> %s", name, ", ".join(str(f) for f in files))
        drawn.append(f"### {name}\n\n" + "\n".join(f"![{f.stem}]({f.name})" for f in files)
                     + ("\n\n" + "\n".join(f"- {n}" for n in notes) if notes else "") + "\n")
    sections += ["## Figures\n", *drawn]
    if skipped:
        sections.append("## Not drawn (inputs missing)\n\n" + "\n".join(skipped) + "\n")
    write_atomic(out / "report.md", "\n".join(sections))
    return out

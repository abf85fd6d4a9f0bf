"""Tables and figures built from run records (``samples.csv``, ``summary.json``, ``severity_study.csv``), never from
memory: ``python -m flashdiff.report RUN_DIR... [--out DIR]``. Run folders are read by ``flashdiff.report.folders``.

The names below are imported on first use, so that the folder reader (used by the CLI's finished-run check) and
``select`` do not load matplotlib.
"""

from importlib import import_module
from typing import Any

_HOMES = {"build_report": "build", "Run": "runs", "collect": "runs", "method_label": "runs", "collect_runs": "table",
          "markdown_table": "table", "table1": "table"}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)

"""Tables and figures built from run records (``samples.csv``, ``summary.json``, ``severity_study.csv``), never from
memory: ``python -m flashdiff.report RUN_DIR... [--out DIR]``."""

from flashdiff.report.build import build_report
from flashdiff.report.runs import Run, collect, method_label
from flashdiff.report.table import collect_runs, markdown_table, table1

__all__ = ["Run", "build_report", "collect", "collect_runs", "markdown_table", "method_label", "table1"]

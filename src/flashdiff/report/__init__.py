"""Tables and figures built from run records (``samples.csv``, ``summary.json``), never from memory."""

from flashdiff.report.table import collect_runs, markdown_table

__all__ = ["collect_runs", "markdown_table"]

"""``python -m flashdiff.select``: kept as a command; the code lives in ``flashdiff.report.select`` (beside the report),
the finished-run check in ``flashdiff.report.folders``."""

from flashdiff.console import run
from flashdiff.report.folders import finished_point
from flashdiff.report.select import main, objective

__all__ = ["finished_point", "main", "objective"]

if __name__ == "__main__":
    run(main, "flashdiff.select")

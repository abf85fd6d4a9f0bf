"""``python -m flashdiff.report RUN_DIR... [--out DIR]``: Table 1 and the paper's figures from run records (single
runs, multiruns, severity studies) into a folder it prints; also prints the side-by-side table of the runs.
``python -m flashdiff.report select SWEEP_DIR ...`` is ``python -m flashdiff.select``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flashdiff.console import ArgumentParser, run


def main(argv: list[str]) -> None:
    """Build the report of the runs named in ``argv`` (or run ``select`` on a sweep folder)."""
    if argv[:1] == ["select"]:
        from flashdiff.report.select import main as select

        return select(argv[1:])
    parser = ArgumentParser(prog="python -m flashdiff.report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders, multirun folders, severity-study folders or files")
    parser.add_argument("--out", default=None, help="report folder (default: outputs/report/<date>_<time>)")
    args = parser.parse_args(argv)
    from flashdiff.report.runs import collect
    from flashdiff.report.table import markdown_table, table_row

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs, _ = collect(args.runs)  # every path checked before anything is printed or written
    from flashdiff.report.build import build_report  # matplotlib and torch: only once the runs are known

    if runs:
        print(markdown_table([table_row(r) for r in runs]))
    out = Path(args.out or f"outputs/report/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    print(f"report written to {build_report(args.runs, out)}")


if __name__ == "__main__":
    run(main, "flashdiff.report")

"""``python -m flashdiff.report RUN_DIR... [--out DIR]``: Table 1 and the paper's figures from run records (single
runs, multiruns, severity studies) into a folder it prints; also prints the side-by-side table of the runs."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from flashdiff.report.build import build_report
from flashdiff.report.table import collect_runs, markdown_table


def main() -> None:
    if sys.argv[1:2] == ["select"]:  # python -m flashdiff.report select SWEEP_DIR ... = python -m flashdiff.select
        from flashdiff.select import main as select

        return select(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders, multirun folders, severity-study folders or files")
    parser.add_argument("--out", default=None, help="report folder (default: outputs/report/<date>_<time>)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out or f"outputs/report/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    summaries = [p for p in args.runs if any(Path(p).rglob("summary.json")) or Path(p).name == "summary.json"]
    if summaries:
        print(markdown_table(collect_runs(summaries)))
    print(f"report written to {build_report(args.runs, out)}")


if __name__ == "__main__":
    main()

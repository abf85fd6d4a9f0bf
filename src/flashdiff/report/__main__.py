"""``python -m flashdiff.report RUN_DIR...``: print a side-by-side table of runs (single runs or multiruns)."""

from __future__ import annotations

import argparse

from flashdiff.report.table import collect_runs, markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders, multirun folders or summary.json files")
    args = parser.parse_args()
    print(markdown_table(collect_runs(args.runs)))


if __name__ == "__main__":
    main()

"""``python -m flashdiff.rank``: kept as a command (the Hydra entry point is ``flashdiff.cli.rank``); the code lives in
``flashdiff.report.ranking``, whose names are re-exported here."""

from flashdiff.report.ranking import (
    COLUMNS,
    check_settings,
    load_encoder,
    rank_dataset,
    rank_rows,
    read_ranking,
    severity_scores,
)

__all__ = ["COLUMNS", "check_settings", "load_encoder", "rank_dataset", "rank_rows", "read_ranking", "severity_scores"]

if __name__ == "__main__":
    from flashdiff.cli import rank

    rank()

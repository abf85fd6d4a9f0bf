"""``python -m flashdiff.rank``: kept as a command (the Hydra entry point is ``flashdiff.cli.rank``); the code lives in
``flashdiff.report.ranking``, whose names are re-exported here (imported on first use: ``--help`` loads no torch)."""

from importlib import import_module
from typing import Any

_NAMES = ("COLUMNS", "check_settings", "load_encoder", "rank_dataset", "rank_rows", "read_ranking", "severity_scores")

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module("flashdiff.report.ranking"), name)


if __name__ == "__main__":
    from flashdiff.cli import rank

    rank()

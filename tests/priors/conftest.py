"""Tiny random-weight snapshots of every text-to-image family, written once per test session on first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.priors.snapshots import write_snapshot


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory):
    """``snapshot(family)``: the folder of the family's tiny snapshot (written on first use)."""
    root, made = tmp_path_factory.mktemp("snapshots"), {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = write_snapshot(family, root / family)
        return made[family]

    return get


@pytest.fixture(scope="session")
def prior(snapshot):
    """``prior(family)``: the family's tiny snapshot loaded at 32 px with the empty prompt (loaded once)."""
    from tests.priors.test_priors import load

    loaded = {}

    def get(family: str):
        if family not in loaded:
            loaded[family] = load(snapshot, family)
        return loaded[family]

    return get

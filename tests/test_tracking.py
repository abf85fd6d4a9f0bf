"""wandb offline: a reconstruction run's files (summary, per-image table, start-step histogram) and sweep groups."""

import csv
import json
import time

from flashdiff.tracking import log_reconstruction, start_run, sweep_group
from tests.report.fake_runs import make_run


def test_offline_run_writes_the_table_and_the_start_histogram(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    folder = make_run(tmp_path / "run", adapter="flash")
    with open(folder / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    run = start_run("offline", "flashdiff-test", group="sweep-x", directory=folder)
    log_reconstruction(run, json.loads((folder / "summary.json").read_text()), rows, folder)
    run.finish()
    (offline,) = (folder / "wandb").glob("offline-run-*")
    (table,) = (offline / "files" / "media" / "table").glob("samples_*.table.json")
    columns = json.loads(table.read_text())["columns"]
    assert columns[-4:] == ["toy_feature_mse", "reconstruction", "clean", "measurement"] and "lpips" in columns
    (log,) = offline.glob("run-*.wandb")
    deadline = time.monotonic() + 30  # wandb-core may still be flushing the transaction log after finish()
    while b"t_start" not in (data := log.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert b"t_start" in data and b"sweep-x" in data and b"fd_toy" in data


def test_sweep_group():
    assert sweep_group("MULTIRUN", "outputs/multirun/2026-01-01", None) == "outputs/multirun/2026-01-01"
    assert sweep_group("RUN", "outputs/multirun/x", None) is None
    assert sweep_group("MULTIRUN", "outputs/multirun/x", "mine") == "mine"

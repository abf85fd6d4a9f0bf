"""The one reader of run folders: summary, overrides, config, samples rows, whatever state the folder is in."""

import json

import pytest
import yaml

from flashdiff.errors import InputError
from flashdiff.records import SAMPLE_COLUMNS, append_samples
from flashdiff.report.folders import RunFolder, find_runs, finished_point
from tests.report.fake_runs import make_run


def _row(index, psnr="25.0"):
    return {k: "" for k in SAMPLE_COLUMNS} | {"index": index, "image_id": f"toy/x/{index}", "nfe": 10, "psnr": psnr}


def test_a_run_folder_reads_its_summary_overrides_config_and_rows(tmp_path):
    folder = tmp_path / "run"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["+experiment=toy_varblur", "solver.eta=2.0"]))
    (folder / "summary.json").write_text(json.dumps({"n_images": 3, "config": {"solver": {"eta": 2.0}}}))
    append_samples(folder / "samples.csv", [_row(0), _row(1, psnr="nan")])
    with open(folder / "samples.csv", "a") as f:
        f.write("2,toy/x/2,0.5\n")  # a row cut by a crash: dropped, its image is redone
    (run,) = find_runs(tmp_path)
    assert run.folder == folder and run.summary["n_images"] == 3 and run.n_failed == 0
    assert run.arguments == ["+experiment=toy_varblur", "solver.eta=2.0"]
    assert run.overrides == {"experiment": "toy_varblur", "solver.eta": "2.0"}
    assert run.config("solver", "eta") == 2.0 and run.config("adapter", "c", default="-") == "-"
    assert [r["index"] for r in run.rows] == ["0", "1"] and run.rows[1]["psnr"] == "nan"


def test_older_runs_and_missing_pieces_still_read(tmp_path):
    old = make_run(tmp_path / "old", images=False)  # samples.csv of an older column set (no cost columns)
    (old / "samples.csv").write_text((old / "samples.csv").read_text() + "9,toy/x/9\n")  # too few fields
    assert len(RunFolder.read(old).rows) == 6
    bare = tmp_path / "bare"  # no .hydra, no summary yet: config from run.json
    bare.mkdir()
    (bare / "run.json").write_text(json.dumps({"fingerprint": "f", "config": {"seed": 3}}))
    run = RunFolder.read(bare)
    assert run.summary == {} and run.arguments == [] and run.rows == [] and run.config("seed") == 3
    (bare / "summary.json").write_text("{cut short")  # unreadable: absent, not a crash
    assert RunFolder.read(bare).summary == {}


def test_find_runs_by_record_kind(tmp_path):
    point = tmp_path / "sweep" / "train.loss.lambda_sigma=1"  # a training point: model/training.json
    (point / ".hydra").mkdir(parents=True)
    (point / ".hydra" / "overrides.yaml").write_text("- train.loss.lambda_sigma=1\n")
    (point / "model").mkdir()
    (point / "model" / "training.json").write_text(json.dumps({"steps": 300}))
    (run,) = find_runs(tmp_path / "sweep")
    assert run.folder == point and run.summary == {"steps": 300} and run.overrides == {"train.loss.lambda_sigma": "1"}
    assert find_runs(tmp_path / "sweep", ("summary.json",)) == []
    with pytest.raises(InputError, match="nowhere: no such file or folder"):
        find_runs(tmp_path / "nowhere")


def test_finished_point_needs_every_image_and_the_same_config(tmp_path):
    from flashdiff.records import fingerprint

    config = {"solver": {"eta": 1.0}, "seed": 0}  # the result-relevant part (the CLI drops num_images, batch_size)
    path = tmp_path / "summary.json"
    assert finished_point(path, 4, fingerprint(config)) is None  # nothing yet
    path.write_text(json.dumps({"n_images": 4, "psnr": 25.0, "fingerprint": fingerprint(config)}))
    assert finished_point(path, 4, fingerprint(config))["psnr"] == 25.0
    assert finished_point(path, 6, fingerprint(config)) is None  # more images asked: resume
    assert finished_point(path, 4, fingerprint(config | {"solver": {"eta": 2.0}})) is None  # another point's config
    path.write_text("{not json")
    assert finished_point(path, 4, fingerprint(config)) is None  # unreadable: recomputed, not a crash

"""Bad input, as a newcomer supplies it: every mistake ends in one line that names what to change (exit code 2, no
traceback), records cannot be mixed between configs or misread, and failed images are counted, never averaged.

Config mistakes are checked through the same function the CLI calls (``flashdiff.validate``); a few of each class
also go through the command line as a user types it (``tests.command``: Hydra's parsing, the entry's exit code and
output, in this process)."""

import json
import math
import shutil

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from PIL import Image

from flashdiff.data.folder import ImageFolder
from flashdiff.errors import ConfigError, InputError, RecordError
from flashdiff.evaluate import summarise
from flashdiff.metrics import MetricSettings
from flashdiff.records import SAMPLE_COLUMNS, append_samples, read_samples, read_summary
from flashdiff.types import COUNTERS
from flashdiff.validate import check_config
from tests.command import command
from tests.test_config import _compose

# (overrides, a fragment the one-line error must contain)
CONFIG_CASES = [
    (["adapter.c=-1"], "adapter.c=-1"),
    (["adapter.c=nan"], "adapter.c=nan"),
    (["adapter.c=inf"], "adapter.c=inf"),
    (["solver.eta=-1"], "solver.eta=-1"),
    (["solver.eta=inf"], "solver.eta=inf"),
    (["solver.delta=2"], "solver.delta=2"),
    (["solver.delta=-0.1"], "solver.delta=-0.1"),
    (["num_images=0"], "num_images=0"),
    (["num_images=-3"], "num_images=-3"),
    (["num_images=abc"], "num_images=abc"),
    (["num_images=2.5"], "num_images=2.5"),
    (["batch_size=0"], "batch_size=0"),
    (["solver.num_steps=0", "solver.delta=1"], "solver.num_steps=0"),
    (["solver.num_steps=5000", "solver.delta=1"], "solver.num_steps=5000"),
    (["solver.num_steps=100"], "needs DDIM"),  # DDPM runs every step of the schedule
    (["solver=ddpm", "solver.num_steps=50"], "needs DDIM"),
    (["adapter=fixed", "adapter.t_start=1000"], "adapter.t_start=1000"),
    (["adapter=fixed", "adapter.t_start=-1"], "adapter.t_start=-1"),
    (["operator.noise_std=-0.1"], "operator.noise_std=-0.1"),
    (["solver=gml_dps", "solver.gamma=-1"], "solver.gamma=-1"),
    (["solver=resample", "solver.omega=-5"], "solver.omega=-5"),
    (["solver=resample", "solver.every=0"], "solver.every=0"),
    (["solver=resample", "solver.max_iters=-1"], "solver.max_iters=-1"),
    (["solver=resample", "solver.lr=0"], "solver.lr=0"),
    (["batching=dynamic"], "batching=dynamic"),
    (["precision=fp8"], "precision=fp8"),
    (["engine.order=random"], "engine.order=random"),
    (["engine.lookahead=-1"], "engine.lookahead=-1"),
    (["seed=1.5"], "seed=1.5"),
    (["solver=dps"], "pixel space"),  # pixel DPS on the latent toy model
    (["model=toy_pixel_ddpm", "adapter=none"], "pixel DDPM: use solver=dps"),  # latent solver on a pixel model
    (["model=toy_pixel_ddpm", "solver=dps", "adapter=flash"], "adapter=flash starts from a severity encoder"),
    (["solver=swinir", "adapter=flash"], "not a diffusion solver"),
    (["solver=psld", "operator=nonlinear_blur"], "needs a linear operator"),
]
VALID = [[], ["+experiment=toy_inpaint"], ["solver=resample"], ["solver=latent_dps_ddim",
                                                                   "adapter=flash_ddim_encoding"],
         ["+experiment=toy_varblur_dps"], ["solver=swinir", "adapter=none"], ["adapter=fixed", "adapter.t_start=0"],
         ["num_images=null"], ["solver=ddim", "solver.delta=0"], ["batching=static", "precision=bf16"]]


def _check(overrides, tmp_path):
    """``flashdiff.validate.check_config`` on a composed config, as ``python -m flashdiff`` runs it."""
    cfg = _compose("config", [*overrides, f"hydra.run.dir={tmp_path}"])
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    restorer = str(cfg.solver._target_).endswith(".from_pretrained")
    build = None if restorer else lambda: instantiate(cfg.solver)
    check_config(OmegaConf.to_container(cfg, resolve=True), choices, build)


@pytest.mark.parametrize(("overrides", "fragment"), CONFIG_CASES, ids=[" ".join(o) for o, _ in CONFIG_CASES])
def test_a_bad_config_is_refused_naming_key_value_and_range(overrides, fragment, tmp_path):
    with pytest.raises(ConfigError) as err:
        _check(overrides, tmp_path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("overrides", VALID, ids=[" ".join(o) or "default" for o in VALID])
def test_good_configs_pass(overrides, tmp_path):
    _check(overrides, tmp_path)


def test_all_problems_of_a_config_are_reported_at_once(tmp_path):
    with pytest.raises(ConfigError, match=r"adapter\.c=-1.*solver\.eta=-2.*batch_size=0"):
        _check(["adapter.c=-1", "solver.eta=-2", "batch_size=0"], tmp_path)


def cli(*args, module="flashdiff", cwd=None):
    """A command as a user types it (run in this process: ``tests.command``); returns (exit code, stdout + stderr)."""
    proc = command(*args, module=module, cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr


def _one_line(code, out, *fragments):
    """Exit 2 and one ``flashdiff: error:`` line holding every fragment; no traceback."""
    errors = [line for line in out.splitlines() if line.startswith("flashdiff: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in out, out[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_command_line_range_and_compatibility_errors_are_one_line(tmp_path):
    _one_line(*cli("adapter.c=-1", "solver.delta=2", f"hydra.run.dir={tmp_path / 'a'}", "logger=disabled"),
              "adapter.c=-1", "solver.delta=2")
    _one_line(*cli("solver=dps", f"hydra.run.dir={tmp_path / 'b'}", "logger=disabled"), "solver=dps", "pixel")
    assert not (tmp_path / "a" / "samples.csv").exists()  # refused before anything ran


def test_command_line_missing_inputs_are_one_line_naming_every_key(tmp_path):
    _one_line(*cli("model.path=/nonexistent/ldm", "severity_encoder=/nonexistent/enc", "logger=disabled",
                   f"hydra.run.dir={tmp_path}"), "model.path=/nonexistent/ldm", "severity_encoder=/nonexistent/enc")


def test_unreadable_weights_are_named(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    broken = tmp_path / "enc"
    shutil.copytree(tiny_encoder_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    common = [f"model.path={tiny_ldm_dir}", "logger=disabled", "num_images=1", "solver.num_steps=2",
              "solver.delta=1"]
    _one_line(*cli(f"severity_encoder={broken}", f"hydra.run.dir={tmp_path / 'a'}", *common),
              str(broken / "model.safetensors"))
    (broken / "model.safetensors").write_bytes((tiny_encoder_dir / "model.safetensors").read_bytes())
    (broken / "config.json").write_text("{not json")
    _one_line(*cli(f"severity_encoder={broken}", f"hydra.run.dir={tmp_path / 'b'}", *common),
              str(broken / "config.json"))


def test_resuming_with_another_config_is_refused_naming_the_keys(tmp_path, tiny_ldm_dir):
    out = tmp_path / "run"
    common = [f"model.path={tiny_ldm_dir}", f"hydra.run.dir={out}", "logger=disabled", "solver=ddim",
              "solver.num_steps=2", "num_images=2"]
    code, log = cli("adapter=none", *common)
    assert code == 0, log[-2000:]
    before = (out / "samples.csv").read_text()
    _one_line(*cli("adapter=none", "seed=7", *common), "seed", "overwrite=true")
    _one_line(*cli("adapter=ae", *common), "adapter")  # Flash's rows never get reported as another adapter's
    assert (out / "samples.csv").read_text() == before  # nothing added, nothing lost
    code, log = cli("adapter=none", "batch_size=1", "num_images=3", *common[:-1])  # result-neutral keys: resumes
    assert code == 0 and "2 of 3 images already done" in log and len(read_samples(out / "samples.csv")) == 3
    code, log = cli("adapter=none", "seed=7", "overwrite=true", *common)
    assert code == 0 and len(list((out / "replaced").glob("*/samples.csv"))) == 1
    assert json.loads((out / "summary.json").read_text())["config"]["seed"] == 7


def test_a_diverging_run_records_nan_counts_the_failures_and_finishes(tmp_path, tiny_ldm_dir):
    out = tmp_path / "run"
    code, log = cli(f"model.path={tiny_ldm_dir}", f"hydra.run.dir={out}", "logger=disabled", "adapter=none",
                    "solver.num_steps=3", "solver.delta=1", "solver.eta=1e30", "num_images=2")
    assert code == 0, log[-2000:]
    rows = read_samples(out / "samples.csv")
    assert [r["psnr"] for r in rows] == ["nan", "nan"] and all(r["nfe"] == "3" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_failed"] == 2 and summary["n_scored"] == 0 and summary["psnr"] is None
    assert "2 of 2 images failed" in log


# -- records -------------------------------------------------------------------------------------------------------
def _row(index, image_id="img", **values):
    return dict.fromkeys(SAMPLE_COLUMNS, None) | dict.fromkeys(COUNTERS, 3) | {
        "index": index, "image_id": image_id, "psnr": 20.0 + index, "ssim": 0.5, "nfe": 3, "seconds": 0.1} | values


@pytest.mark.parametrize("image_id", ["a,b", 'say "hi"', "two\nlines", "ünïcødé/ファイル", " padded ", ""])
def test_ids_with_commas_quotes_newlines_and_unicode_round_trip(tmp_path, image_id):
    append_samples(tmp_path / "samples.csv", [_row(0, image_id), _row(1, "plain")])
    rows = read_samples(tmp_path / "samples.csv")
    assert [r["image_id"] for r in rows] == [image_id, "plain"] and rows[1]["psnr"] == "21"


@pytest.mark.parametrize("damage", ["cut", "fields", "number"])
def test_a_damaged_row_is_dropped_with_a_warning_naming_the_line(tmp_path, damage, caplog):
    path = tmp_path / "samples.csv"
    append_samples(path, [_row(0), _row(1)])
    text = path.read_text()
    if damage == "cut":  # a crash in the middle of appending the third row
        path.write_text(text + "2,img,0.5,,,3,2")
    elif damage == "fields":
        path.write_text(text + "2,img,0.5\n")
    else:
        cells = ["2", "img"] + [""] * (len(SAMPLE_COLUMNS) - 2)
        cells[SAMPLE_COLUMNS.index("psnr")] = "twenty"
        path.write_text(text + ",".join(cells) + "\n")
    assert [r["index"] for r in read_samples(path)] == ["0", "1"]
    assert "line 4 dropped" in caplog.text
    append_samples(path, [_row(2)])  # the image is recomputed and appended on a line of its own
    assert [r["index"] for r in read_samples(path)] == ["0", "1", "2"]


def test_non_finite_results_are_written_as_nan_and_left_out_of_the_means(tmp_path):
    out = tmp_path
    for folder in ("images", "clean"):
        (out / folder).mkdir()
    append_samples(out / "samples.csv", [_row(0, psnr=20.0), _row(1, psnr=math.nan, ssim=math.nan),
                                         _row(2, psnr=30.0), _row(3, psnr=math.inf)])
    assert [r["psnr"] for r in read_samples(out / "samples.csv")] == ["20", "nan", "30", "inf"]
    summary = summarise(out, {"method": "m"}, MetricSettings(lpips=False, fid=False))
    assert summary["n_images"] == 4 and summary["n_scored"] == 2 and summary["n_failed"] == 2
    assert summary["psnr"] == 25.0 and summary["failed_ids"] == ["img", "img"]


def test_an_unreadable_summary_is_treated_as_absent(tmp_path, caplog):
    (tmp_path / "summary.json").write_text('{"n_images": 4,')
    assert read_summary(tmp_path / "summary.json") is None and str(tmp_path / "summary.json") in caplog.text
    (tmp_path / "summary.json").write_text("[1, 2]")
    assert read_summary(tmp_path / "summary.json") is None


def test_claim_folder_refuses_another_config_and_names_the_differing_keys(tmp_path):
    from flashdiff.evaluate import claim_folder

    config = {"seed": 0, "solver": {"eta": 1.0, "num_steps": 1000}, "adapter": {"c": 1.0}}
    claim_folder(tmp_path, config)
    append_samples(tmp_path / "samples.csv", [_row(0)])
    claim_folder(tmp_path, config)  # the same config resumes
    with pytest.raises(RecordError, match=r"differing: adapter\.c, solver\.eta"):
        claim_folder(tmp_path, config | {"solver": {"eta": 2.0, "num_steps": 1000}, "adapter": {"c": 1.2}})
    (tmp_path / "run.json").unlink()  # rows with no record of their config: refused too
    with pytest.raises(RecordError, match="no run.json"):
        claim_folder(tmp_path, config)


# -- datasets ------------------------------------------------------------------------------------------------------
def _png(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)


def test_image_ids_are_unique_by_relative_path(tmp_path):
    _png(tmp_path / "p" / "img.png", 10)
    _png(tmp_path / "q" / "img.png", 200)
    data = ImageFolder(tmp_path, size=8)
    assert len(data) == 2 and {data[k]["id"] for k in range(2)} == {"/p/img", "/q/img"}
    _png(tmp_path / "r" / "p" / "img.png")  # /p/img twice: every id becomes the path relative to the folder
    data = ImageFolder(tmp_path, size=8)
    assert sorted(data[k]["id"] for k in range(3)) == ["/p/img", "/q/img", "/r/p/img"]
    assert len({data[k]["seed"] for k in range(3)}) == 3


def test_a_split_file_needs_unique_stems(tmp_path):
    _png(tmp_path / "p" / "img.png")
    _png(tmp_path / "q" / "img.png")
    (tmp_path / "ids.txt").write_text("img\n")
    with pytest.raises(InputError, match=r"share the id 'img'"):
        ImageFolder(tmp_path, split_file=tmp_path / "ids.txt", size=8)


@pytest.mark.parametrize("content", [b"just text, not an image", "truncated"])
def test_an_unreadable_image_is_named(tmp_path, content):
    _png(tmp_path / "a" / "good.png")
    bad = tmp_path / "a" / "bad.png"
    if content == "truncated":
        _png(bad)
        bad.write_bytes(bad.read_bytes()[:40])
    else:
        bad.write_bytes(content)
    data = ImageFolder(tmp_path, size=8)
    index = [str(f) for f in data.files].index(str(bad))
    with pytest.raises(InputError, match="bad.png: cannot be read as an image"):
        data[index]


def test_an_empty_or_missing_folder_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.root=.*no such folder"):
        ImageFolder(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(tmp_path)



# -- second round: resume, overwrite, folders, devices (issue: reliability, second round) -------------------------
def test_a_cut_row_never_survives_an_append_even_cut_inside_its_last_field(tmp_path):
    path = tmp_path / "samples.csv"
    append_samples(path, [_row(0, draw=12)])
    whole = path.read_text()
    path.write_text(whole + whole.splitlines()[1][:-1])  # a second copy of the row, cut to "...,1": draw 12 -> 1
    append_samples(path, [_row(1)])  # the next append drops the cut row instead of giving it a newline
    assert [(r["index"], r["draw"]) for r in read_samples(path)] == [("0", "12"), ("1", "0")]


@pytest.mark.parametrize(("column", "value"),
                         [("draw", "1.5"), ("nfe", "x"), ("t_start", "-3"), ("decoder_calls", "2.5")])
def test_each_field_is_parsed_as_its_columns_type(tmp_path, column, value, caplog):
    path = tmp_path / "samples.csv"
    append_samples(path, [_row(0), _row(1, **{column: value})])
    assert [r["index"] for r in read_samples(path)] == ["0"] and column in caplog.text


def test_a_damaged_row_is_repaired_when_the_folder_is_opened(tmp_path, tiny_ldm_dir):
    out = tmp_path / "run"
    common = [f"model.path={tiny_ldm_dir}", f"hydra.run.dir={out}", "logger=disabled", "adapter=none",
              "solver=ddim", "solver.num_steps=2", "num_images=2"]
    assert cli(*common)[0] == 0
    with open(out / "samples.csv", "a") as f:
        f.write("1,img,0.5\n")  # a half-written row under a finished run's header
    code, log = cli(*common)  # nothing left to run: the repair happens anyway
    assert code == 0 and "damaged rows dropped" in log, log[-2000:]
    lines = (out / "samples.csv").read_text().splitlines()
    assert len(lines) == 3 and all(len(line.split(",")) == len(SAMPLE_COLUMNS) for line in lines)


def test_every_summary_path_works_when_every_draw_failed(tmp_path):
    for folder in ("images", "clean"):
        (tmp_path / folder).mkdir()
    append_samples(tmp_path / "samples.csv", [_row(k // 2, draw=k % 2, psnr=math.nan, ssim=math.nan)
                                              for k in range(4)])
    summary = summarise(tmp_path, {"method": "m"}, MetricSettings(lpips=False, fid=False))
    assert summary["n_scored"] == 0 and summary["n_failed"] == 4 and summary["n_draws"] == 4


def test_folder_metrics_read_exactly_the_scored_images(tmp_path):
    from flashdiff.metrics.run import scored_folders

    for k in range(4):
        _png(tmp_path / "images" / f"{k:05d}.png", 10 * k)
        _png(tmp_path / "clean" / f"{k:05d}.png", 10 * k)
    _png(tmp_path / "images" / "00009.png")  # left over from a former run
    rows = [{"index": "0", "draw": "0"}, {"index": "2", "draw": "0"}]  # 1 and 3 failed: not scored
    with scored_folders(rows, tmp_path / "images", tmp_path / "clean") as (images, clean):
        assert sorted(p.name for p in images.iterdir()) == sorted(p.name for p in clean.iterdir()) == [
            "00000.png", "00002.png"]


def test_overwrite_moves_the_whole_former_run_aside(tmp_path):
    from flashdiff.evaluate import claim_folder

    config = {"seed": 0}
    claim_folder(tmp_path, config)
    append_samples(tmp_path / "samples.csv", [_row(0)])
    for folder in ("images", "clean", "measurements"):
        _png(tmp_path / folder / "00000.png")
    claim_folder(tmp_path, {"seed": 1}, overwrite=True)
    assert not any((tmp_path / n).exists() for n in ("images", "clean", "measurements", "samples.csv"))
    (aside,) = (tmp_path / "replaced").iterdir()
    assert sorted(p.name for p in aside.iterdir()) == ["clean", "images", "measurements", "run.json", "samples.csv"]


def test_an_unknown_device_is_one_line(tmp_path):
    _one_line(*cli("device=banana", f"hydra.run.dir={tmp_path}", "logger=disabled"), "device=banana")


def test_a_run_folder_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file")
    _one_line(*cli(f"hydra.run.dir={tmp_path / 'taken'}", "logger=disabled"), "hydra.run.dir=", "is a file")
    _one_line(*cli(f"hydra.run.dir={tmp_path / 'taken' / 'run'}", "logger=disabled"), "is a file")


def test_a_model_config_that_is_not_json_names_the_file_and_the_position(tmp_path, tiny_ldm_dir):
    broken = tmp_path / "ldm"
    shutil.copytree(tiny_ldm_dir, broken)
    (broken / "unet" / "config.json").write_text('{\n  "sample_size": 16,,\n}')
    _one_line(*cli(f"model.path={broken}", f"hydra.run.dir={tmp_path / 'run'}", "logger=disabled"),
              str(broken / "unet" / "config.json"), "line 2, column")

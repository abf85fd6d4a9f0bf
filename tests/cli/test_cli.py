"""The command line as a user types it, from another working directory: in this process (``tests.command``), and once
as a separate process (``python -m flashdiff`` in a subprocess, the smoke run)."""

import csv
import functools
import json
import os
import subprocess
import sys

import pytest

from tests.command import command

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


run_cli = functools.partial(command, check=True)  # a command that must succeed (``check=False`` to inspect a failure)


def run_process(*args, cwd=None):
    """``python -m flashdiff <args>`` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-m", "flashdiff", *args], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_help_and_cfg_from_any_directory(tmp_path):
    from tests.conftest import ROOT

    out = run_cli("--help", "num_images=8", cwd=tmp_path).stdout
    assert "python -m flashdiff" in out
    lines = {line.split(":")[0]: line for line in out.splitlines() if ": " in line}
    groups = ("adapter", "dataset", "experiment", "logger", "model", "operator", "solver", "sweep")
    for group in groups:  # the groups one picks for a reconstruction run, each with every option
        options = set(lines[group].split(": ", 1)[1].split("  (")[0].split(", "))
        wanted = {p.stem for p in (ROOT / "conf" / group).glob("*.yaml")}
        if group == "experiment":
            wanted = {w for w in wanted if not w.startswith("train_")}  # the training app's
        if group == "sweep":
            wanted -= {"severity_lambda_sigma", "toy_severity_lambda_sigma"}  # training sweeps
        assert options == wanted, group
    for other in ("train", "sweep/base", "tuned/ffhq_varblur", "paths"):  # never picked for a run
        assert other not in lines, other
    for key in ("num_images=8", "batch_size=16", "batching=continuous", "precision=auto", "device=auto", "seed=0",
                "severity_encoder=", "overwrite="):
        assert f"\n{key}" in out, key  # the stable keys with their value in this config
    assert "_target_" not in out and "--cfg job" in out  # no config dump: it is one flag away
    job = run_cli("+experiment=toy_inpaint", "seed=3", "--cfg", "job", cwd=tmp_path).stdout
    assert "flashdiff.operators.Inpainting" in job and "seed: 3" in job
    assert "train=autoencoder" in run_cli("--help", module="flashdiff.train", cwd=tmp_path).stdout


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_reconstruction_run_writes_the_record_contract_and_resumes(tmp_path, tiny_ldm_dir):
    out = tmp_path / "run"
    common = [f"model.path={tiny_ldm_dir}", f"hydra.run.dir={out}", "batch_size=3", "logger=offline"]
    run_cli("num_images=4", "adapter=none", "solver=ddim", "solver.num_steps=4", *common, cwd=tmp_path,
            env={"WANDB_MODE": "offline"})
    rows = _rows(out / "samples.csv")
    columns = list(rows[0])  # the original columns keep their order; the solver's costs follow
    assert columns[:10] == ["index", "image_id", "severity", "sigma2_hat", "t_start", "nfe", "psnr", "ssim", "lpips",
                            "seconds"]
    assert columns[10:15] == ["score_forwards", "backward_passes", "decoder_calls", "encoder_calls", "inner_iterations"]
    assert columns[15:] == ["toy_feature_mse", "draw"]  # draw: which of samples_per_image trajectories
    assert {r["score_forwards"] for r in rows} == {"4"} and {r["backward_passes"] for r in rows} == {"0"}
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"]
    assert {r["nfe"] for r in rows} == {"4"} and {r["t_start"] for r in rows} == {"751"}  # pure noise: the top (DDIM-4)
    assert all(0 <= float(r["severity"]) <= 1 and float(r["psnr"]) > 0 and r["lpips"] == "" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("method", "solver", "adapter", "operator", "dataset", "n_images", "psnr", "ssim", "lpips", "fid",
                "nfe_mean", "seconds_per_image", "unavailable", "score_forwards_mean", "backward_passes_mean",
                "decoder_calls_mean", "encoder_calls_mean", "inner_iterations_mean"):
        assert key in summary
    assert summary["n_images"] == 4 and summary["nfe_mean"] == 4 and summary["lpips"] is None
    assert summary["operator"] == "toy_blur_varying" and set(summary["unavailable"]) == {"lpips", "fid"}
    assert summary["fd_toy"] >= 0 and summary["toy_feature_mse"] >= 0  # the bundled toy feature network
    assert len(list((out / "images").glob("*.png"))) == 4 and (out / "grid.png").exists()
    for folder in ("clean", "measurements"):  # FID's reference and the report's gallery
        assert sorted(p.name for p in (out / folder).glob("*.png")) == [f"{k:05d}.png" for k in range(4)]
    assert list((out / "wandb").glob("offline-run-*"))
    # resume: a rerun with more images keeps the finished rows byte for byte and adds only the new ones
    before = (out / "samples.csv").read_text()
    log = run_cli("num_images=6", "adapter=none", "solver=ddim", "solver.num_steps=4", *common, cwd=tmp_path,
                  env={"WANDB_MODE": "offline"})
    assert "4 of 6 images already done" in log.stdout + log.stderr
    after = (out / "samples.csv").read_text()
    assert after.startswith(before.rstrip("\n").rsplit("\n", 1)[0]) and len(_rows(out / "samples.csv")) == 6


def test_flash_latent_dps_smoke_run(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    out = tmp_path / "run"
    run_process("num_images=4", "batch_size=4", "adapter=flash", "adapter.c=1.2", "solver=latent_dps",
                "solver.num_steps=10", "solver.delta=1.0", "solver.eta=0.5", f"model.path={tiny_ldm_dir}",
                f"severity_encoder={tiny_encoder_dir}", f"hydra.run.dir={out}", "logger=offline", cwd=tmp_path)
    rows = _rows(out / "samples.csv")
    assert len(rows) == 4 and all(float(r["sigma2_hat"]) >= 0 for r in rows)
    grid = [901 - 100 * k for k in range(10)]  # the DDIM-10 grid, descending
    for r in rows:  # a start matched at grid[k] runs the 10 - k steps from grid[k] to the clean end
        nfe = int(r["nfe"])
        assert 1 <= nfe <= 10 and int(r["t_start"]) == grid[10 - nfe]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "flash(latent_dps)" and summary["solver"] == "latent_dps"


def test_same_image_and_seed_give_the_same_measurement_in_any_batch(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    ae = ["adapter=ae", f"model.path={tiny_ldm_dir}", f"severity_encoder={tiny_encoder_dir}", "logger=disabled",
          "num_images=5"]
    run_cli("batch_size=5", f"hydra.run.dir={tmp_path / 'a'}", *ae, cwd=tmp_path)
    run_cli("batch_size=2", f"hydra.run.dir={tmp_path / 'b'}", *ae, cwd=tmp_path)
    a, b = _rows(tmp_path / "a/samples.csv"), _rows(tmp_path / "b/samples.csv")
    for ra, rb in zip(a, b):
        assert ra["severity"] == rb["severity"] and ra["psnr"] == rb["psnr"] and ra["nfe"] == "0"
        assert ra["t_start"] == ""


def test_bad_input_gets_a_clear_error(tmp_path):
    proc = run_cli("model.path=/nonexistent/ldm", "logger=disabled", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "model.path=/nonexistent/ldm" in proc.stderr
    proc = run_cli("adapter=flash", "severity_encoder=/nonexistent/enc", "logger=disabled",
                   f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "severity_encoder=/nonexistent/enc" in proc.stderr
    assert "python -m flashdiff.train train=severity_blur" in proc.stderr


@pytest.mark.slow
def test_training_command_runs(tmp_path):
    """The command line reaches the trainer (steps, architecture), and the saved model is the one it measured."""
    from flashdiff.data import ToyImages
    from flashdiff.diffusion import LatentDiffusion
    from flashdiff.train.autoencoder import reconstruction_psnr

    arch = ["train.arch.block_out_channels=[8,16]", "train.arch.norm_num_groups=4"]
    run_cli("train=autoencoder", "train.loop.steps=2", "train.loop.batch_size=4", f"train.output_dir={tmp_path}/m",
            f"hydra.run.dir={tmp_path}/w", "logger=disabled", *arch, module="flashdiff.train", cwd=tmp_path)
    record = json.loads((tmp_path / "m/vae/training.json").read_text())
    assert record["steps"] == 2 and record["settings"]["batch_size"] == 4
    assert json.loads((tmp_path / "w/checkpoint/state.json").read_text())["step"] == 2  # resumable from here
    vae = json.loads((tmp_path / "m/vae/config.json").read_text())
    assert vae["block_out_channels"] == [8, 16] and vae["norm_num_groups"] == 4
    model = LatentDiffusion.from_pretrained(tmp_path / "m", unet_subfolder=None)
    assert model.scale_factor == pytest.approx(record["scale_factor"])
    val = ToyImages("val", downscale=2, val_stride=16)  # conf/dataset/toy.yaml's val split
    assert reconstruction_psnr(model, val).mean().item() == pytest.approx(record["val_psnr"], abs=1e-4)

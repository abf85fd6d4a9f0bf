"""Several processes on one job: the images are dealt out once each, the shards fold into one samples.csv, and a
2-process run (real CPU processes, gloo) writes the same per-image rows as a 1-process run."""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from flashdiff.distributed import fold_shards, process_device, rank_and_world, shard_file, share
from flashdiff.errors import RecordError
from flashdiff.records import SAMPLE_COLUMNS, append_samples, read_samples, run_lock
from tests.command import command

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("n", [0, 1, 5, 6, 7])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_share_deals_every_image_once(n, world):
    todo = [k * 10 for k in range(n)]
    parts = [share(todo, rank, world) for rank in range(world)]
    assert sorted(x for part in parts for x in part) == todo  # none twice, none dropped
    assert all(todo.index(x) % world == rank for rank, part in enumerate(parts) for x in part)


def test_a_plain_run_is_one_process_writing_samples_csv(tmp_path):
    assert rank_and_world() == (0, 1)
    assert shard_file(tmp_path, 0, 1) == tmp_path / "samples.csv"
    assert shard_file(tmp_path, 1, 2) == tmp_path / "samples.rank1.csv"
    assert process_device(torch.device("cpu")) == torch.device("cpu")


def _row(index, psnr):
    return {c: "" for c in SAMPLE_COLUMNS} | {"index": index, "image_id": f"img{index}", "psnr": psnr, "nfe": 3}


def test_fold_shards_merges_once_and_keeps_rows_already_there(tmp_path):
    append_samples(tmp_path / "samples.csv", [_row(0, 20.0)])
    append_samples(tmp_path / "samples.rank0.csv", [_row(0, 99.0), _row(2, 22.0)])  # 0 is already in samples.csv
    append_samples(tmp_path / "samples.rank1.csv", [_row(1, 21.0), _row(3, 23.0)])
    assert fold_shards(tmp_path) == 3
    rows = read_samples(tmp_path / "samples.csv")
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"] and rows[0]["psnr"] == "20"
    assert not list(tmp_path.glob("samples.rank*.csv"))
    assert fold_shards(tmp_path) == 0 and len(read_samples(tmp_path / "samples.csv")) == 4  # repeatable


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def _run(cmd, cwd):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=cwd, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def test_one_writer_per_run_folder_and_rank(tmp_path):
    """Two runs given one folder would each append every row (seen: 64 rows for 32 images); the second is refused."""
    out = tmp_path / "run"
    with run_lock(out, rank=0):
        with pytest.raises(RecordError, match=r"hydra\.run\.dir"), run_lock(out, rank=0):
            raise AssertionError("a second writer of rank 0 got the lock")
        with run_lock(out, rank=1):  # the other processes of the same run write their own shards
            assert sorted(p.name for p in out.iterdir()) == [".lock.rank0", ".lock.rank1"]
    with run_lock(out, rank=0):  # released with the run: the next run (a resume) takes it
        assert (out / ".lock.rank0").exists()
    assert not list(out.iterdir())  # a finished folder holds no lock file


def test_a_second_run_into_a_busy_folder_stops_before_writing(tmp_path, tiny_ldm_dir):
    out = tmp_path / "run"
    with run_lock(out):  # a run in progress there
        proc = command(f"model.path={tiny_ldm_dir}", f"hydra.run.dir={out}", "num_images=2", "adapter=none",
                       "solver=ddim", "solver.num_steps=2", "logger=offline", env={"WANDB_MODE": "offline"})
    assert proc.returncode != 0 and "another flashdiff run is writing into" in proc.stdout + proc.stderr
    assert not (out / "samples.csv").exists() and not (out / "summary.json").exists()
    assert not (out / "wandb").exists()  # refused before the logger starts


def test_two_processes_write_the_rows_of_one(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    """accelerate launch with 2 CPU processes: 3 images (uneven), Flash(Latent-DPS), one shared run folder."""
    args = ["num_images=3", "batch_size=1", "adapter=flash", "solver=latent_dps", "solver.num_steps=3",
            "solver.delta=1.0", "solver.eta=0.5", f"model.path={tiny_ldm_dir}", f"severity_encoder={tiny_encoder_dir}"]
    command(*args, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path, check=True)  # one process: this one
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "-m", "flashdiff"]
    log = _run([*launch, *args, f"paths.runs_dir={tmp_path / 'two'}"], tmp_path)  # timestamped run folder
    runs = [p.parent for p in (tmp_path / "two").rglob(".hydra")]
    assert len(runs) == 1, runs  # both processes wrote into the main process's folder
    one, two = tmp_path / "one", runs[0]
    assert _rows(two / "samples.csv") == _rows(one / "samples.csv") and len(_rows(one / "samples.csv")) == 3
    assert not list(two.glob("samples.rank*.csv"))
    for k in range(3):
        assert (two / "images" / f"{k:05d}.png").read_bytes() == (one / "images" / f"{k:05d}.png").read_bytes()
    summary = json.loads((two / "summary.json").read_text())
    assert summary["n_images"] == 3 and summary["psnr"] == json.loads((one / "summary.json").read_text())["psnr"]
    assert (two / "grid.png").exists() and "merged 3 rows of the process shards" in log


def _write_often(path, writer):
    from flashdiff.records import write_atomic

    for k in range(200):
        write_atomic(path, json.dumps({"writer": writer, "k": k}))


def test_processes_writing_one_record_at_once_never_collide(tmp_path):
    """Every process of a run writes its files through its own temporary name (a shared one lost the race)."""
    import multiprocessing

    procs = [multiprocessing.get_context("fork").Process(target=_write_often, args=(tmp_path / "run.json", w))
             for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 6
    assert json.loads((tmp_path / "run.json").read_text())["k"] == 199 and len(list(tmp_path.iterdir())) == 1


def _launch_two(args, cwd):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "-m", "flashdiff"]
    return _run([*launch, *args], cwd)


@pytest.mark.parametrize("trials", [pytest.param(1), pytest.param(8, marks=pytest.mark.slow)])
def test_two_processes_starting_together_claim_the_folder_once(tmp_path, tiny_ldm_dir, trials):
    """Only the main process claims and prepares the folder (with overwrite=true, one folder moved aside); the
    other waits for it. Both start at once into a folder that holds another config's run."""
    out = tmp_path / "run"
    common = ["num_images=2", "adapter=none", "solver=ddim", "solver.num_steps=2", f"model.path={tiny_ldm_dir}",
              f"hydra.run.dir={out}", "logger=disabled"]
    command(*common, "seed=100", cwd=tmp_path, check=True)
    for seed in range(trials):
        _launch_two([*common, f"seed={seed}", "overwrite=true"], tmp_path)
        assert json.loads((out / "summary.json").read_text())["config"]["seed"] == seed
        assert len(read_samples(out / "samples.csv")) == 2 and len(list((out / "replaced").iterdir())) == seed + 1


@pytest.mark.slow
def test_training_runs_data_parallel_on_two_processes(tmp_path):
    """torchrun, 2 CPU processes: one gloo group, half the batch each; only the main process writes the model."""
    arch = ["train.arch.block_out_channels=[8,16]", "train.arch.norm_num_groups=4"]
    log = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "flashdiff.train", "train=autoencoder", "train.loop.steps=2", "train.loop.batch_size=4",
                f"train.output_dir={tmp_path}/m", f"hydra.run.dir={tmp_path}/w", *arch], tmp_path)
    assert "autoencoder: 2 process(es) on cpu" in log and "2 images per process per step" in log
    assert (tmp_path / "m/vae/config.json").exists() and (tmp_path / "w/checkpoint/state.json").exists()
    assert json.loads((tmp_path / "w/checkpoint/state.json").read_text())["step"] == 2

"""Real toy multiruns (tiny random models, 2-3 images, 2-3 DDIM steps): a restarted sweep redoes only what is
missing, the joblib launcher runs points in parallel processes, and select names the best point."""

import json

import pytest

from tests.command import command


def _flashdiff(*args, cwd, module="flashdiff"):
    proc = command(*args, module=module, cwd=cwd, check=True)
    return proc.stdout + proc.stderr


def _tiny_world(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    """Short relative names for the tiny models (a path with '/' would nest the point folders)."""
    (tmp_path / "ldm").symlink_to(tiny_ldm_dir)
    (tmp_path / "enc").symlink_to(tiny_encoder_dir)
    return ["model.path=ldm", "severity_encoder=enc", "paths.runs_dir=runs", "solver.delta=1.0"]


def _csv_lines(path):
    return path.read_text().splitlines()


def test_restarted_sweep_skips_finished_points_and_images(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    sweep = ["-m", "+sweep=toy_flash_eta_c", "solver.eta=1.0,2.0", "adapter.c=1.0", "num_images=3", "batch_size=2",
             "solver.num_steps=3", *_tiny_world(tmp_path, tiny_ldm_dir, tiny_encoder_dir)]
    _flashdiff(*sweep, cwd=tmp_path)
    root = tmp_path / "runs" / "sweeps" / "toy_flash_eta_c" / "default"
    points = sorted(p for p in root.iterdir() if (p / "summary.json").exists())
    assert [p.name.split(",solver.eta=")[1].split(",")[0] for p in points] == ["1.0", "2.0"]
    cut, kept = points
    assert "adapter=flash" in cut.name and "solver=latent_dps" in cut.name and "num_images" not in cut.name
    # interrupt one point: no summary, its last image missing; leave the other finished
    lines = _csv_lines(cut / "samples.csv")
    (cut / "summary.json").unlink()
    (cut / "samples.csv").write_text("\n".join(lines[:-1]) + "\n")
    kept_files = {f: (kept / f).read_bytes() for f in ("samples.csv", "summary.json")}
    kept_mtime = (kept / "summary.json").stat().st_mtime_ns
    log = _flashdiff(*sweep, cwd=tmp_path)  # the same command again
    assert f"{kept} already holds all 3 images of this config: skipped" in log
    assert f"resuming in {cut}: 2 of 3 images already done" in log
    assert {f: (kept / f).read_bytes() for f in kept_files} == kept_files
    assert (kept / "summary.json").stat().st_mtime_ns == kept_mtime
    again = _csv_lines(cut / "samples.csv")
    assert again[:-1] == lines[:-1] and len(again) == len(lines)  # the finished rows untouched, the cut one redone
    assert json.loads((cut / "summary.json").read_text())["n_images"] == 3


def test_joblib_launcher_runs_a_toy_sweep_and_select_names_the_best_point(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    log = _flashdiff("-m", "+sweep=toy_flash_eta_c", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "solver.eta=1.0,2.0", "adapter.c=1.2", "num_images=2", "solver.num_steps=2",
                     *_tiny_world(tmp_path, tiny_ldm_dir, tiny_encoder_dir), cwd=tmp_path)
    assert "Joblib.Parallel(n_jobs=2" in log
    root = tmp_path / "runs" / "sweeps" / "toy_flash_eta_c" / "default"
    summaries = [json.loads(p.read_text()) for p in sorted(root.glob("*/summary.json"))]
    assert [s["n_images"] for s in summaries] == [2, 2]
    assert {s["config"]["solver"]["eta"] for s in summaries} == {1.0, 2.0}
    assert all(s["config"]["dataset"]["split"] == "val" for s in summaries)
    best = _flashdiff(str(root), "--metric", "psnr", cwd=tmp_path, module="flashdiff.select")
    psnr = {s["config"]["solver"]["eta"]: s["psnr"] for s in summaries}
    assert f"best by psnr: solver.eta={max(psnr, key=psnr.get)} (psnr " in best  # c is not swept here


@pytest.mark.slow
def test_submitit_tasks_of_one_point_share_its_images(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    """hydra/launcher=submitit_local with 2 tasks per point: the path a SLURM point with several GPUs takes."""
    _flashdiff("-m", "+sweep=toy_flash_eta_c", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2",
               "hydra.launcher.timeout_min=10", "solver.eta=1.0", "adapter.c=1.0", "num_images=3", "batch_size=1",
               "solver.num_steps=2", *_tiny_world(tmp_path, tiny_ldm_dir, tiny_encoder_dir), cwd=tmp_path)
    root = tmp_path / "runs" / "sweeps" / "toy_flash_eta_c" / "default"
    logs = "".join(p.read_text() for p in root.glob(".submitit/*/*_log.*"))
    assert "merged 3 rows of the process shards" in logs  # two ranks wrote shards, the main one merged them
    (point,) = [p.parent for p in root.glob("*/summary.json")]
    assert json.loads((point / "summary.json").read_text())["n_images"] == 3
    assert not list(point.glob("samples.rank*.csv"))


@pytest.mark.slow
def test_optuna_sweeper_optimises_the_objective(tmp_path, tiny_ldm_dir, tiny_encoder_dir):
    args = ["-m", "+sweep=optuna_flash_latent_dps", "hydra.sweeper.n_trials=2", "num_images=2", "solver.num_steps=2",
            *_tiny_world(tmp_path, tiny_ldm_dir, tiny_encoder_dir)]
    log = _flashdiff(*args, cwd=tmp_path)
    root = tmp_path / "runs" / "sweeps" / "optuna_flash_latent_dps" / "default"
    psnr = [json.loads(p.read_text())["psnr"] for p in root.glob("*/summary.json")]
    assert len(psnr) == 2 and f"Best value: {max(psnr):.6g}"[:16] in log
    assert (root / "optimization_results.yaml").exists()
    assert log.count("skipped") == 0 and _flashdiff(*args, cwd=tmp_path).count("skipped") == 2  # same seed, same trials

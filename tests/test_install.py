"""flashdiff as a library: a wheel (the code, conf/ with the experiments and sweeps, the toy models) installed outside
the checkout runs the main job and the Python API from another directory, with no network and no new dependency."""

import json
import os
import subprocess
import sys
import zipfile

from flashdiff.paths import ROOT

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def _install(tmp_path):
    """(the wheel, a folder it is installed into with ``pip install --target``, no dependencies)."""
    wheels, target = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(ROOT)],
                   check=True, capture_output=True, env=ENV, timeout=600)
    (wheel,) = wheels.glob("flashdiff-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, env=ENV, timeout=600)
    return wheel, target


def _run(code_or_args, target, cwd):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=ENV | {"PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_the_wheel_carries_configs_and_models_and_runs_from_another_directory(tmp_path):
    wheel, target = _install(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("conf/config.yaml", "conf/experiment/toy_varblur.yaml", "conf/sweep/dps_eta.yaml",
                 "models/toy_ldm/unet/config.json", "models/toy_severity_blur/model.safetensors"):
        assert f"flashdiff/_bundled/{name}" in names, name
    assert not any("/results/" in n for n in names)  # result records stay in the repository
    # one interpreter (its imports are most of the cost): where the package and its data are, the Python API with
    # a bundled model by name, then the main job on 2 images as `python -m flashdiff` runs it (runpy)
    run = ["flashdiff", "num_images=2", "logger=disabled", f"hydra.run.dir={tmp_path / 'run'}"]
    probe = ("import runpy, sys\nimport flashdiff, flashdiff.paths as p\nprint(flashdiff.__file__)\nprint(p.ROOT)\n"
             "from flashdiff.diffusion import LatentDiffusion\nfrom flashdiff.toy import model_dir\n"
             "print(LatentDiffusion.from_pretrained(model_dir('toy_ldm')).latent_shape, flush=True)\n"
             f"sys.argv = {run!r}\nrunpy.run_module('flashdiff', run_name='__main__', alter_sys=True)")
    where = _run(probe, target, tmp_path).splitlines()
    assert where[0].startswith(str(target)) and where[1].endswith("_bundled") and where[2] == "(4, 16, 16)"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["n_scored"] == 2 and summary["nfe_mean"] >= 1
    assert "train=" in _run(["-m", "flashdiff.train", "--help"], target, tmp_path)

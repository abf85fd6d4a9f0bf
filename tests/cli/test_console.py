"""A quiet console: a default run prints the run folder, the progress bar, one line per unavailable metric and the
summary; wandb's offline chatter is silenced; ``--help`` does not import torch; a finished folder holds no lock."""

import os
import subprocess
import sys

import pytest

ENV = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"} | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_a_default_run_prints_a_few_lines_and_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "flashdiff", "num_images=1", "logger=offline",
                           f"hydra.run.dir={out}"], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in (proc.stdout + proc.stderr).replace("\r", "\n").splitlines()
             if line.strip() and not line.startswith("flash(latent_dps):")]  # the progress bar's redraws aside
    assert not [line for line in lines if line.startswith("wandb:")], lines  # offline: wandb says nothing
    assert (out / "wandb").is_dir()  # ... and still writes its offline run
    assert sum("run folder" in line for line in lines) == 1 and sum("PSNR" in line for line in lines) == 1
    for metric in ("lpips", "fid"):  # unavailable here (no weights offline): said once, without URLs
        said = [line for line in lines if f"{metric} unavailable" in line]
        assert len(said) == 1 and "://" not in said[0], said
    assert all("run folder" in line or "unavailable:" in line or "PSNR" in line for line in lines), lines
    assert not list(out.glob(".lock*"))


def test_help_does_not_import_torch():
    code = ("import sys\nsys.argv = ['flashdiff', '--help']\nimport flashdiff.__main__ as m\n"
            "try:\n    m.entry()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "False", proc.stdout + proc.stderr


@pytest.mark.parametrize("module", ["flashdiff.train", "flashdiff.rank", "flashdiff.severity_study", "flashdiff.select",
                                    "flashdiff.report", "flashdiff.convert"])
def test_every_command_module_reaches_its_entry(module):
    """``python -m <module>`` runs the entry the tests call in-process (tests.command): its ``__main__`` block is
    wired, and ``--help`` answers without torch."""
    code = (f"import runpy, sys\nsys.argv = [{module!r}, '--help']\ntry:\n    runpy.run_module({module!r}, "
            "run_name='__main__', alter_sys=True)\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "False", proc.stdout + proc.stderr
    assert "python -m " in proc.stdout, proc.stdout[:500]  # the help text: the entry ran

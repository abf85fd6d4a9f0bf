"""bench/gpu.sh cannot rot: its measurements run here at a tiny size (the default suite) and in full as the CPU
smoke version (slow); the rows hold what the GPU table reports."""

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import gpu  # noqa: E402

TINY = replace(gpu.SMOKE, images_per_slot=1, nfe_scale=0.02)


@pytest.fixture(scope="module")
def problem():
    from flashdiff.operators import GaussianBlur
    from flashdiff.solvers.latent_dps import latent_dps

    torch.set_num_threads(1)
    return {"model": gpu.build_model(TINY, torch.device("cpu")), "image": TINY.image,
            "solver": latent_dps(num_steps=1000, eta=1.0), "op": GaussianBlur(kernel_size=TINY.kernel, max_std=3.0)}


def test_the_start_distribution_is_the_documented_one():
    nfe = gpu.draw_nfe(4000, 1.0)
    assert 95 < nfe.float().mean() < 105 and nfe.min() >= 10 and nfe.max() <= 400  # the paper's mean start ~100
    assert torch.equal(nfe[:16], gpu.draw_nfe(16, 1.0))  # fixed: the same starts on every machine


def test_step_rows_report_time_and_memory_with_and_without_checkpointing(problem):
    cpu = torch.device("cpu")
    rows = [gpu.step_row(problem, 2, "fp32", c, cpu, 1) for c in (False, True)]
    assert all(r["s_per_step"] > 0 and r["peak_gib"] > 0 and r["batch"] == 2 for r in rows)
    assert rows[0]["s_per_step_per_image"] == pytest.approx(rows[0]["s_per_step"] / 2)


def test_run_rows_static_and_continuous_report_occupancy(problem):
    cpu = torch.device("cpu")
    static, cont = (gpu.run_row(problem, 4, m, "fp32", cpu, replace(TINY, images_per_slot=2)) for m in
                    ("static", "continuous"))
    assert static["images"] == cont["images"] == 8 and static["mean_nfe"] == cont["mean_nfe"]
    assert cont["occupancy"] > static["occupancy"] and cont["batched_steps"] < static["batched_steps"]
    text = gpu.markdown(cpu, TINY, [], [static, cont], [], [], 1.0)
    assert "| 4 | continuous | fp32 | 8 |" in text and "CPU smoke test" in text


@pytest.mark.slow
def test_gpu_sh_runs_its_cpu_smoke_version(tmp_path):
    out = tmp_path / "gpu.md"
    proc = subprocess.run(["bash", "bench/gpu.sh", "--out", str(out), "--budget", "600"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert text.count("| fp32 |") + text.count("| bf16 |") >= 8 + 3 and "Not run" not in text
    assert "severity encoder forward" in text and "ReSample data-consistency iteration" in text

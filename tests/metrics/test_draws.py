"""samples_per_image: K independent trajectories per image, seeded per image and draw (reruns are identical, K = 1
is the plain run), one row per draw; the summary keeps the oracle apart and measures std against error."""

import json

import torch

import flashdiff
from flashdiff.operators import GaussianBlur
from flashdiff.records import read_samples
from flashdiff.severity import Baseline
from flashdiff.solvers.latent_dps import latent_dps
from tests.command import command
from tests.conftest import AnalyticLDM


def _items(n):
    return [{"x": torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(k)), "index": k, "id": f"i{k}",
             "seed": k} for k in range(n)]


def _run(**settings):
    out = flashdiff.reconstruct(_items(3), GaussianBlur(kernel_size=3), AnalyticLDM(),
                                latent_dps(num_steps=10, delta=1.0, eta=0.3), Baseline(), **settings)
    return {(r.index, r.draw): r for r in out}


def test_draws_are_independent_reproducible_and_draw_zero_is_the_plain_run():
    plain, three = _run(), _run(samples_per_image=3, batch_size=4)
    assert sorted(three) == [(k, d) for k in range(3) for d in range(3)]
    for k in range(3):
        torch.testing.assert_close(three[(k, 0)].x_hat, plain[(k, 0)].x_hat)
        assert torch.equal(three[(k, 1)].y, three[(k, 2)].y)  # one measurement, K trajectories
        assert not torch.allclose(three[(k, 1)].x_hat, three[(k, 2)].x_hat)
    again = _run(samples_per_image=3, batch_size=2, batching="static")
    for key, r in three.items():
        torch.testing.assert_close(r.x_hat, again[key].x_hat)


def test_the_command_line_writes_a_row_per_draw_the_oracle_apart_and_the_uncertainty(tmp_path, tiny_ldm_dir):
    out = tmp_path / "run"
    proc = command(f"model.path={tiny_ldm_dir}", f"hydra.run.dir={out}", "adapter=none", "solver.num_steps=3",
                   "solver.delta=1", "num_images=3", "samples_per_image=3", "logger=disabled")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_samples(out / "samples.csv")
    assert sorted((r["index"], r["draw"]) for r in rows) == [(str(k), str(d)) for k in range(3) for d in range(3)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 3 and summary["n_draws"] == 9
    assert summary["psnr"] == sum(float(r["psnr"]) for r in rows) / 9  # the headline: every draw
    oracle = summary["oracle_best_of_k"]
    assert oracle["k"] == 3 and oracle["psnr"] >= summary["psnr"] and "upper bound" in oracle["note"]
    assert -1 <= summary["uncertainty"]["pixel_correlation_std_abs_error"] <= 1
    assert (out / "uncertainty.png").exists() and len(list((out / "std").glob("*.png"))) == 3
    assert len(list((out / "images").glob("*.png"))) == 9 and len(list((out / "clean").glob("*.png"))) == 3

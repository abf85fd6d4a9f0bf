"""SwinIR through the real command lines: train a tiny one, then evaluate it as ``solver=swinir adapter=none``."""

import json

from tests.cli.test_cli import _rows, run_cli

TINY = ["train.arch.embed_dim=12", "train.arch.depths=[2]", "train.arch.num_heads=[2]", "train.arch.window_size=4",
        "train.arch.mlp_ratio=1.0"]


def test_train_then_evaluate_swinir(tmp_path, tiny_ldm_dir):
    model = tmp_path / "swinir"
    run_cli("train=swinir", "train.loop.steps=2", "train.loop.batch_size=4", "train.max_val_images=4",
            f"train.output_dir={model}", f"hydra.run.dir={tmp_path}/w", "logger=disabled", *TINY,
            module="flashdiff.train", cwd=tmp_path)
    assert json.loads((model / "training.json").read_text())["steps"] == 2
    out = tmp_path / "run"
    run_cli("solver=swinir", "adapter=none", "num_images=2", f"solver.folder={model}",
            f"model.path={tiny_ldm_dir}", f"hydra.run.dir={out}", "logger=disabled", cwd=tmp_path)
    rows = _rows(out / "samples.csv")
    assert len(rows) == 2 and {r["nfe"] for r in rows} == {"0"} and {r["t_start"] for r in rows} == {""}
    assert {r["score_forwards"] for r in rows} == {"0"} and all(float(r["psnr"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["solver"] == "swinir" and summary["nfe_mean"] == 0 and summary["n_images"] == 2
    assert len(list((out / "images").glob("*.png"))) == 2

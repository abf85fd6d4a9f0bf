"""The families through the command line (in this process: ``tests.command``), on their tiny snapshots: a Flash run of
Flux dev with the prompt cached in the run folder, and per family a severity encoder trained with
`python -m flashdiff.train train=severity_blur model=<family>`, then a Flash run with it."""

import json

import pytest

from flashdiff.severity import SeverityEncoder
from tests.cli.test_cli import run_cli
from tests.priors.snapshots import FAMILIES, IMAGE_SIZE
from tests.priors.test_priors import DENOISER, load

COMMON = [f"model.image_size={IMAGE_SIZE}", "num_images=2", "batch_size=2", "logger=disabled", "metrics.lpips=false",
          "metrics.fid=false"]


def test_flux_dev_runs_flash_through_the_command_line(snapshot, tmp_path):
    encoder = tmp_path / "encoder"
    SeverityEncoder.from_latent_diffusion(load(snapshot, "flux_dev")).save_pretrained(encoder)
    out = tmp_path / "run"
    run_cli("model=flux_dev", f"model.path={snapshot('flux_dev')}", "model.prompt=a cat", "adapter=flash",
            f"severity_encoder={encoder}", "solver=latent_dps", "solver.num_steps=4", "solver.delta=1.0",
            f"hydra.run.dir={out}", *COMMON, cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 2 and summary["method"] == "flash(latent_dps)" and 0 <= summary["nfe_mean"] <= 4
    assert len(list((out / "conditioning").glob("flux-*.safetensors"))) == 1  # the prompt's embeddings, kept


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_trains_its_severity_encoder_and_runs_flash_through_the_command_line(snapshot, family, tmp_path):
    model = [f"model={family}", f"model.path={snapshot(family)}", f"model.image_size={IMAGE_SIZE}"]
    encoder = tmp_path / "encoder"
    run_cli("train=severity_blur", *model, "train.loop.steps=2", "train.loop.batch_size=4",
            "train.loop.validate_every=0", "train.max_val_images=2", f"train.output_dir={encoder}",
            f"hydra.run.dir={tmp_path}/train", "logger=disabled", module="flashdiff.train", cwd=tmp_path)
    assert json.loads((encoder / "config.json").read_text())["latent_channels"] == (16 if family in DENOISER else 4)
    out = tmp_path / "run"
    run_cli(*model, "adapter=flash", f"severity_encoder={encoder}", "solver=latent_dps_ddim", "solver.num_steps=4",
            f"hydra.run.dir={out}", *COMMON[1:], cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 2 and summary["method"] == "flash(latent_dps_ddim)" and summary["psnr"] > 0

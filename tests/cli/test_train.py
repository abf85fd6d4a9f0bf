"""``python -m flashdiff.train``: its help lists the training app's groups; a preset trains through the command line
with a head chosen on it."""

import json

from tests.cli.test_cli import run_cli
from tests.conftest import ROOT


def test_help_lists_the_training_groups_and_their_options(tmp_path):
    out = run_cli("--help", module="flashdiff.train", cwd=tmp_path).stdout
    lines = {line.split(":")[0]: line for line in out.splitlines() if ": " in line}
    for group in ("train", "experiment", "dataset", "model", "logger", "paths", "sweep"):
        assert group in lines, group
    assert {p.stem for p in (ROOT / "conf" / "train").glob("*.yaml")} <= set(lines["train"][7:].split(", "))
    assert "train_severity_celebahq_blur" in lines["experiment"] and "toy_varblur" not in lines["experiment"]
    assert "toy_severity_lambda_sigma" in lines["sweep"] and "dps_eta" not in lines["sweep"]
    assert "solver" not in lines and "adapter" not in lines  # the reconstruction app's groups
    assert "_target_" not in out and "--cfg job" in out  # no config dump: it is one flag away


def test_a_severity_preset_trains_with_a_head_set_on_the_command_line(tmp_path, tiny_ldm_dir):
    out = tmp_path / "encoder"
    head = ["train.head._target_=flashdiff.severity.heads.EnergyHead", "+train.head.width=4", "+train.head.early=true"]
    run_cli("train=severity_blur", f"model.path={tiny_ldm_dir}", *head, "train.loop.steps=2", "train.loop.batch_size=4",
            "train.loop.validate_every=0", "train.max_val_images=4", f"train.output_dir={out}",
            f"hydra.run.dir={tmp_path}/run", "logger=disabled", module="flashdiff.train", cwd=tmp_path)
    config = json.loads((out / "config.json").read_text())
    assert config["head"] == {"_target_": "flashdiff.severity.heads.EnergyHead", "width": 4, "early": True,
                              "lr_mult": 10.0}  # lr_mult: the preset's, merged with the override
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 2 and record["head"] == config["head"] and record["test_n_images"] == 4
    assert (tmp_path / "run" / "checkpoint" / "state.json").exists()

"""The study experiments compose as multiruns, and the severity study writes σ̂² rows the report reads back."""

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import flashdiff.paths  # noqa: F401  (registers the ${flashdiff_root:} resolver)
from flashdiff.data import ToyImages
from flashdiff.metrics.severity_study import ordering_by_noise, read_study, severity_grid, severity_study, write_study
from flashdiff.operators import GaussianBlur
from flashdiff.severity import SeverityEncoder
from tests.command import command
from tests.conftest import ROOT

STUDIES = {  # experiment -> the sweep it declares
    "toy_study_noise": {"operator.noise_std": "0.0,0.025,0.05,0.075,0.1,0.15,0.2", "adapter": "flash,none"},
    "toy_study_mismatch": {"operator": "toy_blur_varying,toy_inpaint", "study.encoder": "blur,inpaint"},
    "toy_study_fixed_start": {"adapter.t_start": "10,25,50,100,200,300,500"},
    "toy_study_contributors": {"operator": "identity,toy_blur_varying"},
    "toy_study_ordering": {},
}


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_every_study_file_is_listed():
    assert {p.stem for p in (ROOT / "experiments").glob("toy_study_*.yaml")} == set(STUDIES)


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_composes_with_its_sweep(name, tmp_path):
    cfg = _compose([f"+experiment={name}", f"hydra.run.dir={tmp_path}"])
    assert {k: str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()} == STUDIES[name]
    for key, values in STUDIES[name].items():  # each point of the sweep composes too
        point = _compose([f"+experiment={name}", f"{key}={values.split(',')[-1]}", f"hydra.run.dir={tmp_path}"])
        assert point.severity_encoder.startswith(str(ROOT / "models"))
    if name == "toy_study_mismatch":
        cfg = _compose([f"+experiment={name}", "study.encoder=inpaint", "operator=toy_blur_varying"])
        assert cfg.severity_encoder.endswith("toy_severity_inpaint") and "GaussianBlur" in cfg.operator._target_
    if name == "toy_study_ordering":
        assert list(cfg.study.noise_levels) == [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2]
        assert cfg.study.n_levels == 10 and cfg.study.noise_seeds == 3


def test_severity_study_rows_and_ordering(tmp_path, tiny_encoder_dir):
    encoder = SeverityEncoder.from_pretrained(tiny_encoder_dir)
    op = GaussianBlur(kernel_size=19, max_std=3.0)
    assert severity_grid(op, 4) == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    rows = severity_study(encoder, op, ToyImages("test"), noise_levels=[0.0, 0.1], n_levels=4, noise_seeds=2,
                          num_images=3)
    assert len(rows) == 3 * 2 * 2 * 4 and {r["noise_std"] for r in rows} == {0.0, 0.1}
    write_study(tmp_path / "severity_study.csv", rows)
    by_noise = ordering_by_noise(read_study(tmp_path / "severity_study.csv"))
    assert list(by_noise) == [0.0, 0.1] and all(len(v) == 3 * 2 and all(0 <= a <= 1 for a in v)
                                                 for v in by_noise.values())
    # the same image, noise seed and severity give the same σ̂² whatever else is in the study
    again = severity_study(encoder, op, ToyImages("test"), noise_levels=[0.1], n_levels=4, noise_seeds=2,
                           num_images=1)
    first = [r for r in rows if r["index"] == 0 and r["noise_std"] == 0.1]
    assert [r["sigma2_hat"] for r in again] == pytest.approx([r["sigma2_hat"] for r in first], rel=1e-5)
    # a monotone σ̂² gives ordering accuracy 1
    perfect = [{**r, "sigma2_hat": str(r["severity"])} for r in read_study(tmp_path / "severity_study.csv")]
    assert all(a == 1.0 for v in ordering_by_noise(perfect).values() for a in v)
    with pytest.raises(ValueError, match="2 levels"):
        severity_grid(op, 1)


def test_severity_study_command(tmp_path, tiny_encoder_dir):
    out = tmp_path / "study"
    proc = command("+experiment=toy_study_ordering", "study.num_images=2", "study.n_levels=3", "study.noise_seeds=1",
                   "study.noise_levels=[0.05,0.2]", f"severity_encoder={tiny_encoder_dir}", f"hydra.run.dir={out}",
                   module="flashdiff.severity_study", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_study(out / "severity_study.csv")) == 2 * 3 * 2
    info = json.loads((out / "study.json").read_text())
    assert info["operator"] == "toy_blur_varying" and set(info["ordering_accuracy_by_noise"]) == {"0.05", "0.2"}

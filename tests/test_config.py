"""Every file in conf/ and experiments/ composes, and what it configures instantiates (or fails clearly)."""

import functools
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate

import flashdiff.paths  # noqa: F401  (registers the ${flashdiff_root:} resolver)
from flashdiff.cli import trainer
from flashdiff.diffusion import LatentDiffusion
from flashdiff.types import DiffusionSolver, Restorer
from tests.conftest import ROOT

CONF = ROOT / "conf"
GROUPS = ["adapter", "dataset", "logger", "model", "operator", "paths", "solver"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml") if not p.stem.startswith("train_"))
TRAIN_EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("train_*.yaml"))  # python -m flashdiff.train
TRAIN = sorted(p.stem for p in (CONF / "train").glob("*.yaml"))


def _compose(name, overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


def check_operator(node) -> None:
    """The operator instantiates, or (nonlinear blur, whose weights are never bundled) names its weights key."""
    if node._target_.endswith("NonlinearBlur"):
        with pytest.raises(InstantiationException, match=r"FileNotFoundError.*paths\.bkse_weights=.*GOPRO_wVAE"):
            instantiate(node)
    else:
        assert callable(instantiate(node))


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS) and EXPERIMENTS and TRAIN and TRAIN_EXPERIMENTS


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_group_option_composes_and_instantiates(group, option, tmp_path, tiny_encoder_dir, tiny_swinir_dir):
    trained = [f"solver.folder={tiny_swinir_dir}"] if option == "swinir" else []  # tiny: fast
    cfg = _compose("config", [f"{group}={option}", f"hydra.run.dir={tmp_path}", f"severity_encoder={tiny_encoder_dir}",
                              *trained])
    assert cfg.hydra.runtime.choices[group] == option
    for key in ("seed", "num_images", "batch_size", "device"):
        assert key in cfg
    assert Path(cfg.paths.root) == ROOT
    if group == "operator":
        check_operator(cfg.operator)
    elif group == "adapter":
        assert callable(instantiate(cfg.adapter))
    elif group == "solver":
        assert isinstance(instantiate(cfg.solver), DiffusionSolver | Restorer)
    elif group == "dataset" and option.startswith("toy"):
        assert len(instantiate(cfg.dataset)) >= 64
    elif group == "dataset":
        with pytest.raises(InstantiationException, match=r"FileNotFoundError.*(dataset\.root|paths\.\w+_dir)="):
            instantiate(cfg.dataset)
    elif group == "model" and option.startswith("toy"):  # bundled (PixelDiffusion is a subclass; views wrap toy_ldm)
        assert isinstance(instantiate(cfg.model), LatentDiffusion)
    elif group == "model":  # not bundled: a hub id offline
        with pytest.raises(InstantiationException, match=r"ModelNotFoundError.*model.path=(CompVis|google|/)"):
            instantiate(cfg.model)
    elif group == "logger":
        assert cfg.logger.mode == option


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes(name, tmp_path):
    cfg = _compose("config", [f"+experiment={name}", f"hydra.run.dir={tmp_path}"])
    check_operator(cfg.operator)
    assert cfg.dataset._target_ and cfg.model._target_


@pytest.mark.parametrize("name", TRAIN)
def test_every_training_preset_composes_and_instantiates_to_its_trainer(name, tmp_path):
    cfg = _compose("training", [f"train={name}", f"hydra.run.dir={tmp_path}"])
    assert cfg.hydra.runtime.choices.train == name and cfg.dataset.split == "train"
    assert cfg.train._partial_ and cfg.train.loop.steps > 0
    if "operator" in cfg.train:
        check_operator(cfg.train.operator)
    HydraConfig.instance().set_config(cfg)  # ${hydra:run.dir}
    fn, out, workdir = trainer(cfg.train)  # what python -m flashdiff.train calls fn(job) on
    assert isinstance(fn, functools.partial) and fn.func.__name__ == cfg.train._target_.split(".")[-1]
    assert list(inspect.signature(fn).parameters)[0] == "job" and Path(workdir) == tmp_path  # fn(job) trains
    assert Path(out).parent == (tmp_path if name.endswith("_paper") else ROOT / "models")  # experiments: models/


@pytest.mark.parametrize("name", TRAIN_EXPERIMENTS)
def test_training_experiment_composes(name, tmp_path):
    cfg = _compose("training", [f"+experiment={name}", f"hydra.run.dir={tmp_path}"])
    assert cfg.dataset.split == "train" and cfg.train._target_.endswith(("train_severity_encoder", "train_swinir"))
    assert Path(cfg.train.output_dir).parent == ROOT / "models"
    check_operator(cfg.train.operator)


def test_training_runs_go_to_a_folder_named_for_the_experiment_else_the_preset():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for overrides, folder in ((["train=swinir"], "swinir"),
                                  (["+experiment=train_swinir_lsun_blur"], "train_swinir_lsun_blur")):
            cfg = compose("training", overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            assert cfg.hydra.run.dir == f"outputs/train/{folder}"

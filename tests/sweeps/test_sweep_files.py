"""Every search grid of the paper (METHOD.md §6, App. A/D) exists as a sweep file with exactly its values, and every
sweep file, launcher and sweeper config composes (no cluster needed)."""

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

import flashdiff.paths  # noqa: F401  (registers the ${flashdiff_root:} resolver)
from flashdiff.types import DiffusionSolver
from tests.conftest import ROOT

SWEEPS = ROOT / "sweeps"
ASKED = "???"  # a value the previous stage of a greedy search supplies on the command line

# The paper's grids, written out here independently of METHOD.md and of the sweep files.
DPS = [0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0]
LDPS_FFHQ = [0.1, 0.2, 0.3, 0.4, 0.5, 1.0]
LDPS_LSUN = [0.1, 0.2, 0.4, 1.0]
FLASH_LDPS_FFHQ = [1.0, 2.0, 3.0, 4.0, 7.0, 10.0]
FLASH_LDPS_LSUN = [1.0, 2.0, 4.0, 10.0]
FLASH_GML_FFHQ = [1.0, 2.0, 3.0, 5.0, 10.0]
FLASH_GML_LSUN = [1.0, 2.0, 4.0, 10.0]
FLASH_PSLD = [1.0, 2.0, 4.0, 10.0]
GAMMA = [0.05, 0.1, 0.2, 0.5]
OMEGA = [0.0, 10.0, 20.0, 40.0, 100.0, 200.0, 400.0, 1000.0, 2000.0, 4000.0]
C = [0.8, 1.0, 1.2]
LAMBDA_SIGMA = [0.1, 1.0, 10.0]
DDIM_ETA = [0.1, 0.5, 1.0, 1.5]

# sweep file -> (solver, adapter, {key: grid or fixed value or ASKED})
PAPER = {
    "dps_eta": ("dps", "none", {"solver.eta": DPS}),
    "latent_dps_eta_ffhq": ("latent_dps", "none", {"solver.eta": LDPS_FFHQ}),
    "latent_dps_eta_lsun": ("latent_dps", "none", {"solver.eta": LDPS_LSUN}),
    "flash_latent_dps_eta_ffhq": ("latent_dps", "flash", {"solver.eta": FLASH_LDPS_FFHQ, "adapter.c": [1.0]}),
    "flash_latent_dps_eta_lsun": ("latent_dps", "flash", {"solver.eta": FLASH_LDPS_LSUN, "adapter.c": [1.0]}),
    "flash_latent_dps_c": ("latent_dps", "flash", {"solver.eta": ASKED, "adapter.c": C}),
    "gml_dps_eta_ffhq": ("gml_dps", "none", {"solver.eta": LDPS_FFHQ, "solver.gamma": [0.1]}),
    "gml_dps_eta_lsun": ("gml_dps", "none", {"solver.eta": LDPS_LSUN, "solver.gamma": [0.1]}),
    "gml_dps_gamma": ("gml_dps", "none", {"solver.eta": ASKED, "solver.gamma": GAMMA}),
    "psld_eta_ffhq": ("psld", "none", {"solver.eta": LDPS_FFHQ, "solver.gamma": [0.1]}),
    "psld_eta_lsun": ("psld", "none", {"solver.eta": LDPS_LSUN, "solver.gamma": [0.1]}),
    "psld_gamma": ("psld", "none", {"solver.eta": ASKED, "solver.gamma": GAMMA}),
    "flash_gml_dps_eta_ffhq": ("gml_dps", "flash", {"solver.eta": FLASH_GML_FFHQ, "solver.gamma": [0.1],
                                                    "adapter.c": [1.0]}),
    "flash_gml_dps_eta_lsun": ("gml_dps", "flash", {"solver.eta": FLASH_GML_LSUN, "solver.gamma": [0.1],
                                                    "adapter.c": [1.0]}),
    "flash_gml_dps_gamma": ("gml_dps", "flash", {"solver.eta": ASKED, "solver.gamma": GAMMA, "adapter.c": [1.0]}),
    "flash_gml_dps_c": ("gml_dps", "flash", {"solver.eta": ASKED, "solver.gamma": ASKED, "adapter.c": C}),
    "flash_psld_eta": ("psld", "flash", {"solver.eta": FLASH_PSLD, "solver.gamma": [0.1], "adapter.c": [1.0]}),
    "flash_psld_gamma": ("psld", "flash", {"solver.eta": ASKED, "solver.gamma": GAMMA, "adapter.c": [1.0]}),
    "flash_psld_c": ("psld", "flash", {"solver.eta": ASKED, "solver.gamma": ASKED, "adapter.c": C}),
    "resample_omega": ("resample", "none", {"solver.omega": OMEGA}),
    "flash_resample_omega": ("resample", "flash", {"solver.omega": OMEGA, "adapter.c": [1.0]}),
    "flash_resample_c": ("resample", "flash", {"solver.omega": ASKED, "adapter.c": C}),
    "flash_latent_dps_ddim": ("latent_dps_ddim", "flash", {"solver.num_steps": [20.0, 100.0],
                                                           "solver.delta": [0.0, 1.0], "solver.eta": DDIM_ETA,
                                                           "num_images": [100.0]}),
}
TRAINING = {"severity_lambda_sigma": LAMBDA_SIGMA, "toy_severity_lambda_sigma": LAMBDA_SIGMA}
TOY = {"toy_flash_eta_c": ("latent_dps", "flash", {"solver.eta": FLASH_LDPS_FFHQ, "adapter.c": C, "num_images": [8.0]}),
       # the compute-budget study (bench/budget_study.py): the same mean NFE for both adapters
       "toy_budget_flash": ("latent_dps", "flash_budget", {"adapter.nfe_mean": [10.0, 20.0, 40.0, 80.0],
                                                            "num_images": [32.0]}),
       "toy_budget_fixed": ("latent_dps", "fixed", {"adapter.t_start": [9.0, 19.0, 39.0, 79.0], "num_images": [32.0]}),
       # the modern solvers' step sizes, each with and without Flash (bench/solvers.py takes the choices)
       "toy_mpgd_eta": ("mpgd", "none,flash", {"solver.eta": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
                                               "num_images": [8.0]}),
       "toy_latent_daps_lr": ("latent_daps", "none,flash", {"solver.lr": [0.25, 0.5, 1.0],
                                                              "solver.beta_y": [0.05, 0.1], "num_images": [8.0]})}
OTHERS = {"optuna_flash_latent_dps"}
FILES = sorted(p.stem for p in SWEEPS.glob("*.yaml"))


def _params(name: str) -> dict[str, str]:
    """``hydra.sweeper.params`` of a sweep file, read as plain yaml."""
    return {k: str(v) for k, v in yaml.safe_load((SWEEPS / f"{name}.yaml").read_text())["hydra"]["sweeper"]["params"]
            .items()}


def _grid(text: str) -> list[float] | str:
    """A comma-separated grid as floats (``???`` as is)."""
    return text if text == ASKED else [float(v) for v in text.split(",")]


def _compose(config: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=config, overrides=overrides, return_hydra_config=True)


def test_every_sweep_file_is_a_known_grid():
    assert set(FILES) == set(PAPER) | set(TRAINING) | set(TOY) | OTHERS


@pytest.mark.parametrize("name", sorted(PAPER | TOY))
def test_reconstruction_sweep_holds_the_papers_grid(name):
    solver, adapter, grids = (PAPER | TOY)[name]
    params = _params(name)
    assert params.pop("solver") == solver and params.pop("adapter") == adapter
    assert {k: _grid(v) for k, v in params.items()} == grids


@pytest.mark.parametrize("name", sorted(TRAINING))
def test_training_sweep_holds_the_lambda_sigma_grid(name):
    assert {k: _grid(v) for k, v in _params(name).items()} == {"train.loss.lambda_sigma": TRAINING[name]}


def test_greedy_searches_chain_their_stages():
    """GML-DPS / PSLD: eta at gamma = 0.1 first, then gamma at that eta; c last for every Flash method."""
    for solver in ("gml_dps", "psld"):
        for stage1 in (f"{solver}_eta_ffhq", f"{solver}_eta_lsun"):
            assert PAPER[stage1][2]["solver.gamma"] == [0.1] and _params(stage1)["solver.gamma"] == "0.1"
        assert _params(f"{solver}_gamma")["solver.eta"] == ASKED
    for name in ("flash_latent_dps_c", "flash_gml_dps_c", "flash_psld_c", "flash_resample_c"):
        assert _grid(_params(name)["adapter.c"]) == C
        assert ASKED in _params(name).values()


@pytest.mark.parametrize("name", sorted(PAPER | TOY) + sorted(OTHERS))
def test_reconstruction_sweep_composes_on_validation_images(name, tmp_path, tiny_encoder_dir):
    common = [f"paths.runs_dir={tmp_path}", f"severity_encoder={tiny_encoder_dir}", "+experiment=toy_varblur"]
    cfg = _compose("config", [f"+sweep={name}", *common])
    assert cfg.dataset.split == "val"
    sweep_dir = OmegaConf.select(cfg, "hydra.sweep.dir")
    assert sweep_dir == f"{tmp_path}/sweeps/{name}/toy_varblur" and "now" not in str(cfg.hydra.sweep.dir)
    assert cfg.hydra.sweep.subdir == cfg.hydra.job.override_dirname  # a point's folder is named for its overrides
    # one point: the first value of every swept key (a value asked from an earlier stage: 1.0)
    point = [f"{k}={'1.0' if v == ASKED else v.split(',')[0]}" for k, v in _params(name).items()
             if not v.startswith(("choice", "tag", "interval"))]
    cfg = _compose("config", [f"+sweep={name}", *common, *point])
    solver, adapter = (PAPER | TOY)[name][:2] if name in PAPER | TOY else ("latent_dps", "flash")
    assert cfg.hydra.runtime.choices.solver == solver and cfg.hydra.runtime.choices.adapter == adapter.split(",")[0]
    assert isinstance(instantiate(cfg.solver), DiffusionSolver) and callable(instantiate(cfg.adapter))
    assert cfg.dataset.split == "val" and len(instantiate(cfg.dataset)) > 0
    assert not OmegaConf.missing_keys(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))


@pytest.mark.parametrize("name", sorted(TRAINING))
def test_training_sweep_composes_and_trains_each_point_into_its_own_folder(name, tmp_path):
    cfg = _compose("training", [f"+sweep={name}", f"paths.runs_dir={tmp_path}", "train.loss.lambda_sigma=0.1"])
    assert cfg.hydra.runtime.choices.train == "severity_blur" and cfg.train.loss.lambda_sigma == 0.1
    assert OmegaConf.select(cfg, "hydra.sweep.dir") == f"{tmp_path}/sweeps/{name}/severity_blur"
    train = OmegaConf.to_container(cfg.train, resolve=False)
    assert train["output_dir"] == "${hydra:runtime.output_dir}/model"
    assert train["workdir"] == "${hydra:runtime.output_dir}"
    assert callable(instantiate(cfg.train.operator))


def test_slurm_launcher_config():
    cfg = _compose("config", ["hydra/launcher=slurm", "+sweep=latent_dps_eta_ffhq", "hydra.launcher.partition=gpu",
                              "hydra.launcher.timeout_min=30", "hydra.launcher.tasks_per_node=4",
                              "hydra.launcher.gpus_per_node=4"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and cfg.hydra.runtime.choices["hydra/launcher"] == "slurm"
    assert (launcher.partition, launcher.timeout_min, launcher.tasks_per_node, launcher.gpus_per_node) == \
        ("gpu", 30, 4, 4)
    assert launcher.array_parallelism > 0 and launcher.max_num_timeout > 0
    assert OmegaConf.select(cfg, "hydra.launcher.submitit_folder").startswith(
        OmegaConf.select(cfg, "hydra.sweep.dir"))


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_local_launchers_compose(launcher):
    cfg = _compose("config", [f"hydra/launcher={launcher}", "+sweep=toy_flash_eta_c"])
    assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher and cfg.hydra.launcher._target_


def test_optuna_sweeper_searches_the_same_keys():
    cfg = _compose("config", ["+sweep=optuna_flash_latent_dps"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize" and cfg.objective == "psnr"
    assert {"solver.eta", "adapter.c"} <= set(sweeper.params) and sweeper.params["adapter.c"] == "choice(0.8, 1.0, 1.2)"


def test_sweep_readme_lists_every_sweep():
    text = (ROOT / "docs" / "sweeps.md").read_text()
    assert all(f"`{name}`" in text for name in FILES)


def test_every_file_under_sweeps_is_yaml_or_the_readme():
    assert {p.suffix for p in SWEEPS.rglob("*") if p.is_file()} <= {".yaml", ".md"}
    assert sorted(Path(p).stem for p in (SWEEPS / "base").glob("*.yaml")) == ["reconstruction", "training"]

"""Every solver config composes with every start adapter in every toy experiment, honours the solver contract
(``flashdiff.types.DiffusionSolver`` / ``Restorer``) and runs through the engine. The lists come from conf/."""

import pytest
import torch
from hydra.utils import instantiate

from flashdiff.data.seeding import generators
from flashdiff.engine import sample
from flashdiff.types import DiffusionSolver, Restorer
from tests.conftest import AnalyticLDM
from tests.solvers.test_dps import tiny_pixel_model
from tests.test_config import CONF, _compose

ALL_SOLVERS = sorted(p.stem for p in (CONF / "solver").glob("*.yaml"))
ADAPTERS = sorted(p.stem for p in (CONF / "adapter").glob("*.yaml"))
EXPERIMENTS = ["toy_varblur", "toy_inpaint"]


def _is_restorer(name: str) -> bool:
    """A restorer's config builds a network from weights (``from_pretrained``); a diffusion solver's is a factory."""
    return str(_compose("config", [f"solver={name}"]).solver._target_).endswith(".from_pretrained")


SOLVERS = [s for s in ALL_SOLVERS if not _is_restorer(s)]
CORE = sorted({("toy_varblur", "flash", s) for s in SOLVERS} | {("toy_inpaint", a, "latent_dps") for a in ADAPTERS})
"""The default suite: every solver once (Flash, blur) and every adapter once (Latent-DPS, inpainting)."""
CASES = [pytest.param(*c, id="-".join(c)) for c in CORE] + [
    pytest.param(e, a, s, id=f"{e}-{a}-{s}", marks=pytest.mark.slow)
    for e in EXPERIMENTS for a in ADAPTERS for s in SOLVERS if (e, a, s) not in CORE]  # the full product: slow


def test_the_lists_come_from_conf():
    assert {"latent_dps", "gml_dps", "psld", "resample", "ddpm", "ddim", "dps"} <= set(SOLVERS)
    assert {"none", "flash", "fixed", "fixed_e0", "ae", "flash_ddim_encoding"} <= set(ADAPTERS)
    assert set(ALL_SOLVERS) - set(SOLVERS) == {"swinir"}


@pytest.mark.parametrize("name", ALL_SOLVERS)
def test_every_solver_config_targets_its_defining_module(name):
    target = str(_compose("config", [f"solver={name}"]).solver._target_)
    module = target.rsplit(".", 2)[0] if _is_restorer(name) else target.rsplit(".", 1)[0]
    assert module.startswith("flashdiff.solvers.") and module.count(".") == 2, target


def test_a_restorer_is_not_a_diffusion_solver(tiny_swinir_dir):
    net = instantiate(_compose("config", ["solver=swinir", f"solver.folder={tiny_swinir_dir}"]).solver)
    assert isinstance(net, Restorer) and not isinstance(net, DiffusionSolver)
    assert net.restore(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(("experiment", "adapter", "solver"), CASES)
def test_solver_composes_with_adapter_and_experiment(experiment, adapter, solver, tmp_path):
    cfg = _compose("config", [f"+experiment={experiment}", f"solver={solver}", f"adapter={adapter}",
                              f"hydra.run.dir={tmp_path}"])
    choices = cfg.hydra.runtime.choices
    assert (choices.solver, choices.adapter) == (solver, adapter)
    method, op = instantiate(cfg.solver), instantiate(cfg.operator)
    assert isinstance(method, DiffusionSolver) and int(method.num_steps) >= 1  # the adapters match on this grid
    x = torch.rand(2, 3, 32, 32)
    params = op.draw(torch.tensor([1, 2]), tuple(x.shape))
    y = op.measure(x, params, torch.tensor([1, 2]))
    model = tiny_pixel_model(32) if solver == "dps" else AnalyticLDM(shape=(3, 32, 32))  # pixel DPS: pixel model
    method.check(model, op)
    z = torch.randn(2, 3, 32, 32)
    out = sample(model, method, z, torch.tensor([0, 1]), generators([1, 2]), op=op, y=y, params=params)
    assert out.nfe.tolist() == [0, 1] and torch.equal(out.latents[0], z[0]) and torch.isfinite(out.latents).all()

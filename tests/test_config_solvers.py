"""Every solver config composes with every start adapter in every toy experiment, and its bound keywords run."""

import pytest
import torch
from hydra.utils import instantiate

from flashdiff.data.seeding import generators
from tests.conftest import AnalyticLDM
from tests.solvers.test_dps import tiny_pixel_model
from tests.test_config import CONF, _compose

PIXEL_RESTORERS = {"swinir"}  # no grid, no latents: tests/solvers/test_swinir.py, tests/cli/test_swinir.py
SOLVERS = sorted(p.stem for p in (CONF / "solver").glob("*.yaml") if p.stem not in PIXEL_RESTORERS)
ADAPTERS = ["none", "flash", "fixed", "ae"]
EXPERIMENTS = ["toy_varblur", "toy_inpaint"]
CASES = [(e, a, s) for e in EXPERIMENTS for a in ADAPTERS for s in SOLVERS]


def test_every_new_solver_has_a_config():
    assert {"latent_dps", "gml_dps", "psld", "resample"} <= set(SOLVERS)


@pytest.mark.parametrize(("experiment", "adapter", "solver"), CASES, ids=["-".join(c) for c in CASES])
def test_solver_composes_with_adapter_and_experiment(experiment, adapter, solver, tmp_path):
    cfg = _compose("config", [f"+experiment={experiment}", f"solver={solver}", f"adapter={adapter}",
                              f"hydra.run.dir={tmp_path}"])
    choices = cfg.hydra.runtime.choices
    assert (choices.solver, choices.adapter) == (solver, adapter)
    assert int(cfg.solver.num_steps) >= 1  # the adapters match starts on this grid
    run, op = instantiate(cfg.solver), instantiate(cfg.operator)
    x = torch.rand(2, 3, 32, 32)
    params = op.draw(torch.tensor([1, 2]), tuple(x.shape))
    y = op.measure(x, params, torch.tensor([1, 2]))
    model = AnalyticLDM(shape=(3, 32, 32))  # identity autoencoder: latents are images in [-1, 1]
    if solver == "dps":  # pixel DPS needs a pixel model
        model = tiny_pixel_model(32)
    z = torch.randn(2, 3, 32, 32)
    out = run(model, op, y, params, z, torch.tensor([0, 1]), generators=generators([1, 2]))
    assert out.nfe.tolist() == [0, 1] and torch.equal(out.latents[0], z[0]) and torch.isfinite(out.latents).all()

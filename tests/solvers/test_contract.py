"""What every guided solver promises through the engine: shapes, per-sample NFE and costs with mixed starts, start 0
= no change, results (and costs) independent of batch composition and slot count; only active samples reach the
networks. And that a solver with its own loop shape plugs into the same contract (an annealed sampler below)."""

import inspect
from pathlib import Path

import pytest
import torch
from hydra.utils import get_method
from omegaconf import OmegaConf

from flashdiff.data.seeding import generators
from flashdiff.errors import ConfigError
from flashdiff.operators import GaussianBlur
from flashdiff.types import COUNTERS, DiffusionSolver
from tests.conftest import run
from tests.solvers.common import CountingLDM, problem, rows_of

CONF = Path(__file__).resolve().parents[2] / "conf" / "solver"
SMALL = {"num_steps": 20, "delta": 1.0, "eta": 0.4, "gamma": 0.3, "every": 4, "max_iters": 15}
"""Keys a test run sets, where the solver's factory takes them: a short DDIM grid and mild steps."""


def _factories() -> dict[str, tuple]:
    """Every latent diffusion solver of conf/solver whose grid can be shortened (its factory takes ``num_steps``
    and, if it steps DDPM/DDIM, ``delta``): (factory, keywords) with the YAML's values and ``SMALL`` on top. A new
    solver's YAML is picked up here with no test edit."""
    found = {}
    for path in sorted(CONF.glob("*.yaml")):
        cfg = OmegaConf.to_container(OmegaConf.load(path))
        factory = get_method(cfg.pop("_target_"))
        params = inspect.signature(factory).parameters
        if "num_steps" not in params:  # a restorer
            continue
        kwargs = cfg | {k: v for k, v in SMALL.items() if k in params}
        solver = factory(**kwargs)
        if not isinstance(solver, DiffusionSolver) or getattr(solver, "space", "latent") != "latent":
            continue
        try:
            solver.check(CountingLDM(), GaussianBlur(kernel_size=5))
        except ConfigError:  # a grid that cannot be shortened (ddpm runs every step of the schedule)
            continue
        found[path.stem] = (factory, kwargs)
    return found


SOLVERS = _factories()


def _run(name, model, op, y, params, z, start, seeds):
    solver, kwargs = SOLVERS[name]
    return run(solver(**kwargs), model, op, y, params, z, start, generators(seeds))


def test_the_solvers_come_from_conf():
    assert {"latent_dps", "gml_dps", "psld", "resample", "mpgd", "latent_daps", "ddim"} <= set(SOLVERS)


@pytest.mark.parametrize("name", SOLVERS)
def test_mixed_starts_shapes_and_costs_per_sample(name):
    model, op = CountingLDM(), GaussianBlur(kernel_size=5)
    _, params, y = problem(op, 3)
    z, start = torch.randn(3, 3, 8, 8), torch.tensor([0, 5, 12])
    out = _run(name, model, op, y, params, z, start, [1, 2, 3])
    assert out.latents.shape == z.shape and out.nfe.tolist() == [0, 5, 12]
    for key in ("nfe", *COUNTERS):
        assert getattr(out, key).dtype == torch.int64 and getattr(out, key).shape == (3,)
    torch.testing.assert_close(out.latents[0], z[0], rtol=0, atol=0)  # start 0: untouched, nothing spent
    assert all(int(getattr(out, key)[0]) == 0 for key in COUNTERS)
    assert model.eps_rows == int(out.score_forwards.sum())  # only active rows run
    assert int(out.decoder_calls.sum()) == model.decode_rows and int(out.encoder_calls.sum()) == model.encode_rows
    per_step = SOLVERS[name][0](**SOLVERS[name][1]).costs_per_step()  # what the solver declares
    if per_step is None:  # data-dependent costs (ReSample's per-sample stop): one forward a step, the rest its own test
        assert torch.equal(out.score_forwards, out.nfe) and model.eps_rows == 17
        return
    for key in COUNTERS:
        assert getattr(out, key).tolist() == [per_step[key] * n for n in out.nfe.tolist()], key


@pytest.mark.parametrize("name", SOLVERS)
def test_start_zero_everywhere_is_the_identity(name):
    model, op = CountingLDM(), GaussianBlur(kernel_size=5)
    _, params, y = problem(op, 2)
    z = torch.randn(2, 3, 8, 8)
    out = _run(name, model, op, y, params, z, torch.zeros(2, dtype=torch.int64), [1, 2])
    assert torch.equal(out.latents, z) and out.nfe.tolist() == [0, 0]
    assert all(getattr(out, key).tolist() == [0, 0] for key in COUNTERS)
    assert model.eps_rows == model.decode_rows == model.encode_rows == 0


@pytest.mark.parametrize("name", SOLVERS)
def test_result_and_costs_do_not_depend_on_batch_composition(name):
    model, op = CountingLDM(), GaussianBlur(kernel_size=5)
    _, params, y = problem(op, 3)
    z, start, seeds = torch.randn(3, 3, 8, 8), torch.tensor([20, 7, 13]), [1, 2, 3]
    together = _run(name, model, op, y, params, z, start, seeds)
    for b in range(3):
        alone = _run(name, model, op, y[b:b + 1], rows_of(params, b), z[b:b + 1], start[b:b + 1], seeds[b:b + 1])
        torch.testing.assert_close(alone.latents[0], together.latents[b], rtol=1e-4, atol=1e-5)
        for key in ("nfe", *COUNTERS):
            assert int(getattr(alone, key)[0]) == int(getattr(together, key)[b]), key


@pytest.mark.parametrize("name", SOLVERS)
def test_results_do_not_depend_on_slots_or_batching(name):
    model, op = CountingLDM(), GaussianBlur(kernel_size=5)
    _, params, y = problem(op, 4)
    z, start, seeds = torch.randn(4, 3, 8, 8), torch.tensor([20, 3, 13, 0]), [1, 2, 3, 4]
    ref = _run(name, model, op, y, params, z, start, seeds)
    solver, kwargs = SOLVERS[name]
    for slots, batching in ((1, "continuous"), (2, "continuous"), (3, "static")):
        out = run(solver(**kwargs), model, op, y, params, z, start, generators(seeds), batch_size=slots,
                  batching=batching)
        torch.testing.assert_close(out.latents, ref.latents, rtol=1e-4, atol=1e-5)
        for key in ("nfe", *COUNTERS):
            assert getattr(out, key).tolist() == getattr(ref, key).tolist(), key


class AnnealedLangevin:
    """A toy solver with its own loop shape (not a DDPM/DDIM step): at each grid level, ``inner`` Langevin steps
    ``z += ε_s ∇log p + sqrt(2 ε_s) n`` with the score ``-ε_θ / b_i``, then a deterministic move to the next level.
    It keeps a per-sample running count of its inner steps in the engine's solver state."""

    def __init__(self, num_steps: int = 10, inner: int = 3, step: float = 0.05) -> None:
        self.num_steps, self.inner, self.step_size = num_steps, inner, step

    def grid(self, schedule):
        from flashdiff.diffusion.steps import sampling_grid

        return sampling_grid(schedule.num_steps, self.num_steps)

    def check(self, model, op):
        pass

    def step(self, batch):
        from flashdiff.diffusion.steps import ddim_step

        schedule, z = batch.model.schedule, batch.z
        b = schedule.b(batch.i).view(-1, 1, 1, 1)
        for _ in range(self.inner):
            eps = batch.model.eps(z, batch.i)
            batch.counts["score_forwards"] += 1
            noise = torch.stack([torch.randn(z.shape[1:], generator=g) for g in batch.generators])
            z = z - self.step_size * eps / b + (2 * self.step_size) ** 0.5 * b * noise * 0.1
        batch.state["inner"] = batch.state.get("inner", torch.zeros(z.shape[0])) + self.inner
        batch.counts["inner_iterations"] += self.inner
        batch.counts["score_forwards"] += 1
        return ddim_step(schedule, z, batch.model.eps(z, batch.i), batch.i, batch.i_prev)


def test_a_solver_with_inner_steps_and_state_plugs_into_the_engine():
    from flashdiff.engine import Chunk, Engine
    from flashdiff.types import DiffusionSolver

    solver = AnnealedLangevin()
    assert isinstance(solver, DiffusionSolver)
    model = CountingLDM()
    z, nfe, seeds = torch.randn(3, 3, 8, 8), torch.tensor([10, 4, 7]), [5, 6, 7]
    ref = run(solver, model, None, None, {}, z, nfe, generators(seeds))
    assert ref.nfe.tolist() == [10, 4, 7] and ref.inner_iterations.tolist() == [30, 12, 21]
    assert ref.score_forwards.tolist() == [40, 16, 28]  # inner forwards + the move, per grid level
    one_slot = run(AnnealedLangevin(), model, None, None, {}, z, nfe, generators(seeds), batch_size=1)
    torch.testing.assert_close(one_slot.latents, ref.latents)
    engine = Engine(model, None, AnnealedLangevin(), batch_size=2)
    list(engine.run([Chunk(z, nfe, None, {}, generators(seeds), [0, 1, 2])]))
    # longest first: 10 and 7 share the slots; 4 takes 7's slot with its state zeroed at admission
    assert sorted(engine.state["inner"].tolist()) == [12.0, 30.0] and engine.stats.busy_slot_steps == 21

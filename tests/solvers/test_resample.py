"""ReSample: its Adam is Adam, the optimiser stops per sample at τ = σ_y², hard data consistency runs every
`every` grid steps from the bottom, and the result fits the measurement better than the prior does."""

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.operators import GaussianBlur, Identity, Inpainting
from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.resample import hard_data_consistency, resample
from flashdiff.types import COUNTERS
from tests.conftest import run
from tests.solvers.common import CountingLDM, problem


def _counts(b):
    return {name: torch.zeros(b, dtype=torch.int64) for name in COUNTERS}


def _mse(model, op, y, params, z):
    return (y - op.A(model.decode(z), params)).flatten(1).pow(2).mean(dim=1)


def test_optimiser_stops_each_sample_at_tau_and_a_stopped_sample_stays_put():
    model, op = CountingLDM(), Identity(noise_std=0.05)
    x, params, y = problem(op, 3)
    tau = op.noise_std**2
    z0 = torch.stack([2 * y[0] - 1, torch.zeros(3, 8, 8), 2 * x[2] - 1 + 0.5])  # fits y already | far | off by a bit
    counts = _counts(3)
    z = hard_data_consistency(model, op, y, params, z0, counts, tau=tau, max_iters=200)
    iters = counts["inner_iterations"]
    assert model.decode_rows == int(counts["decoder_calls"].sum())
    assert iters[0] == 0 and torch.equal(z[0], z0[0])  # met τ at the start: no step, no change
    assert (iters[1:] > 0).all() and (iters < 200).all()
    assert (_mse(model, op, y, params, z) < tau).all()
    assert torch.equal(counts["backward_passes"], iters) and torch.equal(counts["decoder_calls"], iters + 1)
    for b in (1, 2):  # one step fewer has not reached τ: the stop is the first iterate below it
        one = {k: v[b:b + 1] for k, v in params.items()}
        before = hard_data_consistency(model, op, y[b:b + 1], one, z0[b:b + 1], _counts(1), tau=tau,
                                       max_iters=int(iters[b]) - 1)
        assert _mse(model, op, y[b:b + 1], one, before).item() >= tau
        alone = hard_data_consistency(model, op, y[b:b + 1], one, z0[b:b + 1], _counts(1), tau=tau,
                                      max_iters=200)
        torch.testing.assert_close(alone[0], z[b])  # other samples stopping does not change this one


def test_optimiser_respects_max_iters_when_tau_is_out_of_reach():
    model, op = CountingLDM(), Identity(noise_std=0.0)
    _, params, y = problem(op, 2)
    counts = _counts(2)
    hard_data_consistency(model, op, y, params, torch.zeros(2, 3, 8, 8), counts, tau=0.0, max_iters=7)
    assert counts["inner_iterations"].tolist() == [7, 7] and counts["decoder_calls"].tolist() == [7, 7]


@pytest.mark.parametrize(("every", "start", "calls"), [(10, [20, 11, 10, 5, 1, 0], [2, 2, 1, 1, 1, 0]),
                                                       (1, [20, 3, 0], [20, 3, 0])])
def test_data_consistency_runs_every_few_steps_from_the_bottom(every, start, calls):
    model, op = CountingLDM(), Identity(noise_std=0.0)  # τ = 0 is never met: one iteration per call
    _, params, y = problem(op, len(start))
    z = torch.randn(len(start), 3, 8, 8)
    out = run(resample(num_steps=20, every=every, max_iters=1), model, op, y, params, z, torch.tensor(start),
              generators(range(len(start))))
    assert out.inner_iterations.tolist() == calls and out.nfe.tolist() == start


def test_last_step_returns_the_data_consistent_estimate():
    model, op = CountingLDM(), Inpainting(severity_range=[0.5, 0.5])
    x, params, y = problem(op, 3)
    z, start = torch.randn(3, 3, 8, 8), torch.full((3,), 30)
    prior = run(ddim(num_steps=30, delta=1.0), model, op, y, params, z, start, generators(range(3)))
    out = run(resample(num_steps=30, every=10, omega=400.0, max_iters=300),
              model, op, y, params, z, start, generators(range(3)))
    assert (out.inner_iterations < 3 * 300).all()  # every call stopped at τ
    assert (_mse(model, op, y, params, out.latents) < op.noise_std**2).all()
    assert (_mse(model, op, y, params, prior.latents) > 4 * op.noise_std**2).all()
    err = lambda lat: (model.decode(lat) - x).flatten(1).norm(dim=1)  # noqa: E731
    assert err(out.latents).mean() < err(prior.latents).mean()


def test_bad_settings_are_clear_errors():
    model, op = CountingLDM(), GaussianBlur(kernel_size=5)
    _, params, y = problem(op, 1)
    with pytest.raises(ValueError, match="solver.every"):
        run(resample(every=0),
            model, op, y, params, torch.zeros(1, 3, 8, 8), torch.ones(1, dtype=torch.int64), generators([0]))
    with pytest.raises(ValueError, match="solver.delta"):
        run(resample(delta=None),
            model, op, y, params, torch.zeros(1, 3, 8, 8), torch.ones(1, dtype=torch.int64), generators([0]))


def test_its_costs_through_the_engine_follow_its_optimiser():
    """ReSample declares no fixed cost per step (its stop is per sample): its optimiser steps are its only gradients,
    and each of them, and each check that stopped it, costs a decoder call."""
    model, op = CountingLDM(), GaussianBlur(kernel_size=5)
    _, params, y = problem(op, 3)
    solver = resample(num_steps=20, delta=1.0, every=4, max_iters=15)
    assert solver.costs_per_step() is None
    out = run(solver, model, op, y, params, torch.randn(3, 3, 8, 8), torch.tensor([0, 5, 12]), generators([1, 2, 3]))
    assert torch.equal(out.backward_passes, out.inner_iterations) and (out.inner_iterations[1:] > 0).all()
    assert (out.decoder_calls >= out.inner_iterations).all() and (out.encoder_calls == 0).all()

"""What every guided solver promises: shapes, per-sample NFE and costs with mixed starts, start 0 = no change,
results (and costs) independent of batch composition; only active samples reach the networks."""

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.operators import GaussianBlur
from flashdiff.solvers import gml_dps, latent_dps, psld, resample
from flashdiff.types import COUNTERS
from tests.solvers.common import CountingLDM, problem, rows_of

DDIM = {"num_steps": 20, "delta": 1.0}
SOLVERS = {
    "latent_dps": (latent_dps, {"eta": 0.4, **DDIM}),
    "gml_dps": (gml_dps, {"eta": 0.4, "gamma": 0.3, **DDIM}),
    "psld": (psld, {"eta": 0.4, "gamma": 0.3, **DDIM}),
    "resample": (resample, {"every": 4, "omega": 400.0, "max_iters": 15, **DDIM}),
}


def _run(name, model, op, y, params, z, start, seeds):
    solver, kwargs = SOLVERS[name]
    return solver(model, op, y, params, z, start, generators=generators(seeds), **kwargs)


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
    assert torch.equal(out.score_forwards, out.nfe) and model.eps_rows == 17  # only active rows run
    assert int(out.decoder_calls.sum()) == model.decode_rows and int(out.encoder_calls.sum()) == model.encode_rows
    if name == "resample":  # the optimiser's steps are its only gradients; its checks cost decoder calls too
        assert torch.equal(out.backward_passes, out.inner_iterations) and (out.inner_iterations[1:] > 0).all()
        assert (out.decoder_calls >= out.inner_iterations).all() and (out.encoder_calls == 0).all()
    else:  # one UNet forward, one D0 call and one backward per step; E0 once per step for GML / PSLD
        assert torch.equal(out.backward_passes, out.nfe) and torch.equal(out.decoder_calls, out.nfe)
        assert torch.equal(out.encoder_calls, out.nfe if name != "latent_dps" else torch.zeros(3, dtype=torch.int64))
        assert (out.inner_iterations == 0).all()


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

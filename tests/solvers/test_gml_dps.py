"""GML-DPS: the goodness-modified term vanishes on an exact autoencoder, has the closed form on a lossy one,
and runs through real networks (E0 and D0 both in the gradient)."""

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.diffusion.guidance import ResidualGuidance
from flashdiff.operators import GaussianBlur
from flashdiff.solvers.gml_dps import gml_dps
from flashdiff.solvers.latent_dps import latent_dps
from flashdiff.types import COUNTERS, StepBatch
from tests.conftest import run
from tests.solvers.common import CountingLDM, problem, rows_of


class LossyLDM(CountingLDM):
    """E0(D0(z)) = z / 2: the GML term is ||ẑ0 - ẑ0/2|| = ||ẑ0|| / 2, pulling ẑ0 toward the fixed point 0."""

    def encode(self, x):
        return 0.5 * super().encode(x)


def test_exact_autoencoder_makes_gml_dps_latent_dps():
    model, op = CountingLDM(), GaussianBlur(kernel_size=5)
    _, params, y = problem(op, 3)
    z, start = torch.randn(3, 3, 8, 8), torch.tensor([20, 4, 0])
    gens = lambda: generators(range(3))  # noqa: E731
    kw = {"num_steps": 20, "delta": 1.0, "eta": 0.4}
    gml = run(gml_dps(gamma=5.0, **kw), model, op, y, params, z, start, gens())
    torch.testing.assert_close(gml.latents, run(latent_dps(**kw), model, op, y, params, z, start, gens()).latents)
    assert gml.encoder_calls.tolist() == [20, 4, 0]


def test_goodness_term_has_its_closed_form_and_pulls_to_the_fixed_point():
    model, op = LossyLDM(), GaussianBlur(kernel_size=5)
    _, params, y = problem(op, 2)
    z0 = torch.randn(2, 3, 8, 8)
    counts = {k: torch.zeros(2, dtype=torch.int64) for k in COUNTERS}
    batch = StepBatch(model=model, op=op, z=z0, i=torch.zeros(2, dtype=torch.int64), i_prev=torch.zeros(2),
                      noise=z0, y=y, params=params, generators=[], counts=counts)
    loss = ResidualGuidance(0.7, 0.3)(batch, z0)
    want = 0.7 * (2 * (y - op.A(model.decode(z0), params))).flatten(1).norm(dim=1) + 0.15 * z0.flatten(1).norm(dim=1)
    torch.testing.assert_close(loss, want)
    z, start = torch.randn(2, 3, 8, 8), torch.full((2,), 20)
    gens = lambda: generators(range(2))  # noqa: E731
    kw = {"num_steps": 20, "delta": 1.0, "eta": 0.0}
    pulled = run(gml_dps(gamma=3.0, **kw), model, op, y, params, z, start, gens()).latents
    prior = run(gml_dps(gamma=0.0, **kw), model, op, y, params, z, start, gens()).latents
    assert (pulled.flatten(1).norm(dim=1) < 0.8 * prior.flatten(1).norm(dim=1)).all()


@pytest.fixture(scope="module")
def tiny_ldm():
    from tests.conftest import build_tiny_ldm

    return build_tiny_ldm().requires_grad_(False).eval()


def test_runs_through_real_networks_per_sample(tiny_ldm):
    op = GaussianBlur(kernel_size=5)
    x = torch.rand(2, 3, 32, 32)
    params = op.draw(torch.tensor([1, 2]), tuple(x.shape))
    y = op.measure(x, params, torch.tensor([1, 2]))
    z, start = torch.randn(2, 4, 16, 16), torch.tensor([3, 2])
    kw = {"num_steps": 10, "delta": 1.0, "eta": 0.5, "gamma": 0.5}
    out = run(gml_dps(**kw), tiny_ldm, op, y, params, z, start, generators([5, 6]))
    assert out.encoder_calls.tolist() == out.decoder_calls.tolist() == out.backward_passes.tolist() == [3, 2]
    assert torch.isfinite(out.latents).all()
    without = run(gml_dps(**{**kw, "gamma": 0.0}), tiny_ldm, op, y, params, z, start, generators([5, 6]))
    assert not torch.allclose(out.latents, without.latents)  # the E0 term moves the result
    alone = run(gml_dps(**kw), tiny_ldm, op, y[1:], rows_of(params, 1), z[1:], start[1:], generators([6]))
    torch.testing.assert_close(alone.latents[0], out.latents[1], rtol=1e-4, atol=1e-5)

"""Latent-DPS on the analytic model: guidance pulls toward the measurement, per sample, batch-invariant."""

import torch

from flashdiff.data.seeding import generators
from flashdiff.operators import GaussianBlur, Inpainting
from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.latent_dps import latent_dps
from tests.conftest import AnalyticLDM, run


def _problem(op, b=4):
    x = torch.rand(b, 3, 8, 8)
    seeds = torch.arange(b) + 10
    params = op.draw(seeds, tuple(x.shape))
    return x, params, op.measure(x, params, seeds)


def test_guidance_fits_the_measurement_better_than_the_prior():
    model, op = AnalyticLDM(), Inpainting(severity_range=[0.5, 0.5])
    x, params, y = _problem(op)
    z = torch.stack([torch.randn(3, 8, 8, generator=g) for g in generators(range(4), 5)])
    start = torch.full((4,), 50)
    prior = run(ddim(num_steps=50, delta=1.0), model, op, y, params, z, start, generators(range(4)))
    guided = run(latent_dps(num_steps=50, eta=2.0, delta=1.0), model, op, y, params, z, start, generators(range(4)))
    fit = lambda lat: (op.A(model.decode(lat), params) - y).flatten(1).norm(dim=1)  # noqa: E731
    assert (fit(guided.latents) < 0.5 * fit(prior.latents)).all()
    err = lambda lat: (model.decode(lat) - x).flatten(1).norm(dim=1)  # noqa: E731
    assert err(guided.latents).mean() < err(prior.latents).mean()


def test_mixed_starts_count_per_sample_and_only_active_rows_run():
    model, op = AnalyticLDM(), GaussianBlur(kernel_size=5)
    _, params, y = _problem(op, 3)
    start = torch.tensor([0, 5, 12])
    out = run(latent_dps(eta=0.3), model, op, y, params, torch.zeros(3, 3, 8, 8), start, generators(range(3)))
    assert out.nfe.tolist() == [0, 5, 12] and model.eps_rows == 17
    torch.testing.assert_close(out.latents[0], torch.zeros(3, 8, 8))


def test_guided_result_does_not_depend_on_batch_composition():
    model, op = AnalyticLDM(), GaussianBlur(kernel_size=5)
    _, params, y = _problem(op, 3)
    z, start = torch.randn(3, 3, 8, 8), torch.tensor([20, 7, 13])
    kw = {"num_steps": 20, "delta": 1.0, "eta": 0.4}
    together = run(latent_dps(**kw), model, op, y, params, z, start, generators([1, 2, 3])).latents
    for b in range(3):
        one = {k: v[b:b + 1] for k, v in params.items()}
        alone = run(latent_dps(**kw),
                    model, op, y[b:b + 1], one, z[b:b + 1], start[b:b + 1], generators([b + 1])).latents
        torch.testing.assert_close(alone[0], together[b], rtol=1e-4, atol=1e-5)

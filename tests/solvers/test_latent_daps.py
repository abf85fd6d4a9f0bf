"""LatentDAPS: one annealing level equals a loop written out here (the DDIM ODE to ẑ0, Langevin with the gradient in
closed form on the analytic model and the same per-sample noise, the re-noise), its costs are per sample, and the
annealing fits the measurement better than the prior."""

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.diffusion.sampling import randn_rows
from flashdiff.diffusion.steps import ddim_step
from flashdiff.errors import ConfigError
from flashdiff.operators import Inpainting
from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.latent_daps import latent_daps
from flashdiff.types import COUNTERS, StepBatch
from tests.conftest import AnalyticLDM, run
from tests.solvers.common import problem


def test_one_level_equals_the_loop_written_out():
    model, op = AnalyticLDM(), Inpainting(severity_range=[0.5, 0.5])
    _, params, y = problem(op, 2)
    z, noise = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    i, i_prev = torch.tensor([600, 97]), torch.tensor([500, -1])
    counts = {k: torch.zeros(2, dtype=torch.int64) for k in COUNTERS}
    solver = latent_daps(num_steps=10, ode_steps=3, langevin_steps=4, lr=0.2, r=0.7, beta_y=0.1)
    batch = StepBatch(model=model, op=op, z=z, i=i, i_prev=i_prev, noise=noise, y=y, params=params,
                      generators=generators([5, 6]), counts=counts, i_host=i.clone())
    out = solver.step(batch)
    gens = generators([5, 6])  # the same per-sample streams, drawn again below
    x = z  # (1) three DDIM steps, delta 0: 600 -> 400 -> 200 -> clean and 97 -> 64 -> 32 -> clean
    for now, nxt in (([600, 97], [400, 64]), ([400, 64], [200, 32]), ([200, 32], [-1, -1])):
        now, nxt = torch.tensor(now), torch.tensor(nxt)
        x = ddim_step(model.schedule, x, model.eps(x, now), now, nxt)
    z0_hat, z0 = x, x
    abar = model.schedule.abar(i)
    r2 = (0.49 * (1 - abar) / abar).view(-1, 1, 1, 1).float()
    mask = params["mask"]
    for _ in range(4):  # (2) Langevin; the identity autoencoder D(z) = (z + 1) / 2 gives the gradient in closed form
        residual = y - mask * (z0 + 1) / 2
        grad = -(z0 - z0_hat) / r2 + 0.5 * mask * residual / 0.1**2
        eta = 0.2 / (1 / r2 + 1 / 0.1**2)
        z0 = z0 + eta * grad + (2 * eta).sqrt() * randn_rows(gens, z0.shape[1:], z0)
    a = model.schedule.abar(i_prev).view(-1, 1, 1, 1).float()  # (3) re-noise; the clean end keeps z0
    torch.testing.assert_close(out, a.sqrt() * z0 + (1 - a).sqrt() * noise, rtol=1e-4, atol=1e-5)
    assert counts["score_forwards"].tolist() == [3, 3] and counts["inner_iterations"].tolist() == [4, 4]
    assert counts["decoder_calls"].tolist() == counts["backward_passes"].tolist() == [4, 4]


def test_annealing_fits_the_measurement_better_than_the_prior():
    model, op = AnalyticLDM(), Inpainting(severity_range=[0.5, 0.5])
    _, params, y = problem(op, 4)
    z, nfe = torch.randn(4, 3, 8, 8), torch.full((4,), 20)
    prior = run(ddim(num_steps=20, delta=1.0), model, op, y, params, z, nfe, generators(range(4)))
    daps = run(latent_daps(num_steps=20, ode_steps=2, langevin_steps=10, lr=0.5), model, op, y, params, z, nfe,
               generators(range(4)))
    fit = lambda lat: (op.A(model.decode(lat), params) - y).flatten(1).norm(dim=1)  # noqa: E731
    assert (fit(daps.latents) < 0.5 * fit(prior.latents)).all()
    assert daps.score_forwards.tolist() == [40] * 4 and daps.inner_iterations.tolist() == [200] * 4


@pytest.mark.parametrize(("key", "value"), [("ode_steps", 0), ("langevin_steps", 1.5), ("lr", 0.0)])
def test_bad_settings_name_their_key(key, value):
    with pytest.raises(ConfigError, match=f"solver.{key}"):
        latent_daps(**{key: value})

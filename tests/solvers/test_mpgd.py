"""MPGD (guidance on ẑ0 only): its step is DDIM from the gradient-updated Tweedie estimate, the UNet is never
differentiated, and guidance fits the measurement better than the prior does."""

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.diffusion.steps import ddim_from_z0, tweedie_z0
from flashdiff.errors import ConfigError
from flashdiff.operators import Inpainting
from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.mpgd import mpgd
from flashdiff.types import COUNTERS, StepBatch
from tests.conftest import AnalyticLDM, run
from tests.solvers.common import CountingLDM, problem


class GradWatching(CountingLDM):
    """Records whether autograd was on whenever the score model ran."""

    def __init__(self) -> None:
        super().__init__()
        self.grad_modes = []

    def eps(self, z_i, i):
        self.grad_modes.append(torch.is_grad_enabled() or z_i.requires_grad)
        return super().eps(z_i, i)


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_a_step_is_ddim_from_the_updated_z0_and_never_differentiates_the_unet(inner_steps):
    model, op = GradWatching(), Inpainting(severity_range=[0.5, 0.5])
    _, params, y = problem(op, 3)
    z, noise = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    i, i_prev = torch.tensor([500, 300, 40]), torch.tensor([450, 250, -1])
    counts = {k: torch.zeros(3, dtype=torch.int64) for k in COUNTERS}
    batch = StepBatch(model=model, op=op, z=z, i=i, i_prev=i_prev, noise=noise, y=y, params=params,
                      generators=[], counts=counts)
    with torch.enable_grad():  # even where the caller has autograd on
        out = mpgd(num_steps=20, eta=0.3, delta=0.5, inner_steps=inner_steps).step(batch)
    assert model.grad_modes == [False]  # one UNet forward, outside autograd
    eps = model.eps(z, i)
    z0 = tweedie_z0(model.schedule, z, eps, i)
    for _ in range(inner_steps):  # z0 <- z0 - eta grad ||2 (y - A D(z0))||, written out here
        z0 = z0.detach().requires_grad_(True)
        loss = 0.3 * (2 * (y - op.A(model.decode(z0), params))).flatten(1).norm(dim=1)
        (grad,) = torch.autograd.grad(loss.sum(), z0)
        z0 = (z0 - grad).detach()
    torch.testing.assert_close(out, ddim_from_z0(model.schedule, z0, eps, i, i_prev, noise, 0.5))
    assert counts["backward_passes"].tolist() == counts["decoder_calls"].tolist() == [inner_steps] * 3
    assert counts["score_forwards"].tolist() == [1] * 3 and counts["encoder_calls"].tolist() == [0] * 3


def test_guidance_fits_the_measurement_better_than_the_prior():
    model, op = AnalyticLDM(), Inpainting(severity_range=[0.5, 0.5])
    _, params, y = problem(op, 4)
    z, nfe = torch.randn(4, 3, 8, 8), torch.full((4,), 50)
    prior = run(ddim(num_steps=50, delta=1.0), model, op, y, params, z, nfe, generators(range(4)))
    guided = run(mpgd(num_steps=50, eta=1.0, delta=1.0), model, op, y, params, z, nfe, generators(range(4)))
    fit = lambda lat: (op.A(model.decode(lat), params) - y).flatten(1).norm(dim=1)  # noqa: E731
    assert (fit(guided.latents) < 0.5 * fit(prior.latents)).all()


def test_inner_steps_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="solver.inner_steps"):
        mpgd(inner_steps=0)

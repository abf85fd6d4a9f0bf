"""The shared reverse loop on an analytic model: z0 ~ N(mu, s^2 I) has a closed-form epsilon-predictor."""

import pytest
import torch

from flashdiff.data.seeding import generators as sample_generators
from flashdiff.diffusion import Schedule
from flashdiff.diffusion.sampling import reverse_diffusion
from flashdiff.diffusion.steps import ddim_step, ddpm_step, sampling_grid
from flashdiff.solvers import ddim, ddpm

MU, S = 0.7, 0.5


class GaussianPrior:
    """Identity autoencoder with a Gaussian latent prior; counts score-model rows evaluated."""

    def __init__(self) -> None:
        self.schedule = Schedule.ldm()
        self.rows_evaluated = 0

    def eps(self, z_i, i):
        self.rows_evaluated += z_i.shape[0]
        a, b = self.schedule.a(i).view(-1, 1, 1, 1), self.schedule.b(i).view(-1, 1, 1, 1)
        return b * (z_i - a * MU) / (a**2 * S**2 + b**2)  # E[eps | z_i]


def _ddpm_step(model):
    return lambda z, eps, i, i_prev, n: ddpm_step(model.schedule, z, eps, i, n)


def test_full_ddpm_run_samples_the_prior():
    model = GaussianPrior()
    b = 400
    gens = sample_generators(range(b))
    z = torch.stack([torch.randn(1, 2, 2, generator=g) for g in sample_generators(range(b), 99)])
    out = reverse_diffusion(model, z, torch.full((b,), 1000), sampling_grid(1000, 1000), _ddpm_step(model), gens)
    assert out.latents.mean().item() == pytest.approx(MU, abs=0.05)
    assert out.latents.std().item() == pytest.approx(S, rel=0.06)


def test_per_sample_nfe_and_only_active_rows_cost_compute():
    model = GaussianPrior()
    start = torch.tensor([0, 3, 10, 1])
    z = torch.randn(4, 1, 2, 2)
    out = reverse_diffusion(model, z, start, sampling_grid(1000, 1000), _ddpm_step(model), sample_generators(range(4)))
    assert out.nfe.tolist() == [0, 3, 10, 1] and out.score_forwards.tolist() == [0, 3, 10, 1]
    assert model.rows_evaluated == 14  # the sum of the starts, not 4 x 10
    for unspent in (out.backward_passes, out.decoder_calls, out.encoder_calls, out.inner_iterations):
        assert unspent.tolist() == [0, 0, 0, 0]  # unguided: no gradients, no autoencoder
    torch.testing.assert_close(out.latents[0], z[0])  # start 0 = no change
    assert not torch.equal(out.latents[1], z[1])


def test_result_does_not_depend_on_batch_composition():
    model = GaussianPrior()
    grid = sampling_grid(1000, 50)
    step = lambda z, eps, i, i_prev, n: ddim_step(model.schedule, z, eps, i, i_prev, n, 1.0)  # noqa: E731
    seeds = [11, 22, 33]
    z = torch.randn(3, 1, 4, 4)
    start = torch.tensor([50, 7, 20])
    together = reverse_diffusion(model, z, start, grid, step, sample_generators(seeds)).latents
    for b in range(3):
        alone = reverse_diffusion(model, z[b:b + 1], start[b:b + 1], grid, step, sample_generators(seeds[b:b + 1]))
        torch.testing.assert_close(alone.latents[0], together[b])
    swapped = reverse_diffusion(model, z.flip(0), start.flip(0), grid, step, sample_generators(seeds[::-1])).latents
    torch.testing.assert_close(swapped.flip(0), together)


def test_start_out_of_range_is_an_error():
    model = GaussianPrior()
    with pytest.raises(ValueError, match="num_steps"):
        reverse_diffusion(model, torch.zeros(1, 1, 1, 1), torch.tensor([51]), sampling_grid(1000, 50),
                          _ddpm_step(model), sample_generators([0]))


def test_solvers_run_from_mixed_starts():
    model = GaussianPrior()
    z = torch.randn(2, 1, 2, 2)
    out = ddim(model, None, None, None, z, torch.tensor([20, 0]), generators=sample_generators([1, 2]), num_steps=20)
    assert out.nfe.tolist() == [20, 0]
    torch.testing.assert_close(out.latents[1], z[1])
    # deterministic DDIM from pure noise lands near the prior's support
    assert abs(out.latents[0].mean().item() - MU) < 3 * S
    with pytest.raises(ValueError, match="solver.num_steps=100"):
        ddpm(model, None, None, None, z, torch.tensor([1, 1]), generators=sample_generators([1, 2]), num_steps=100)
    out = ddpm(model, None, None, None, z, torch.tensor([5, 1]), generators=sample_generators([1, 2]))
    assert out.nfe.tolist() == [5, 1]

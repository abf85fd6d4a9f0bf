"""The engine's loop on an analytic model (z0 ~ N(mu, s^2 I) has a closed-form epsilon-predictor): per-sample
positions, NFE, only occupied slots cost compute, results independent of batching, order and slot count."""

import pytest
import torch

from flashdiff.data.seeding import generators as sample_generators
from flashdiff.diffusion import Schedule
from flashdiff.engine import Chunk, Engine, sample
from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.ddpm import ddpm

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


def test_full_ddpm_run_samples_the_prior():
    model = GaussianPrior()
    b = 400
    z = torch.stack([torch.randn(1, 2, 2, generator=g) for g in sample_generators(range(b), 99)])
    out = sample(model, ddpm(), z, torch.full((b,), 1000), sample_generators(range(b)))
    assert out.latents.mean().item() == pytest.approx(MU, abs=0.05)
    assert out.latents.std().item() == pytest.approx(S, rel=0.06)


def test_per_sample_nfe_and_only_active_rows_cost_compute():
    model = GaussianPrior()
    z = torch.randn(4, 1, 2, 2)
    out = sample(model, ddpm(), z, torch.tensor([0, 3, 10, 1]), sample_generators(range(4)))
    assert out.nfe.tolist() == [0, 3, 10, 1] and out.score_forwards.tolist() == [0, 3, 10, 1]
    assert model.rows_evaluated == 14  # the sum of the starts, not 4 x 10
    for unspent in (out.backward_passes, out.decoder_calls, out.encoder_calls, out.inner_iterations):
        assert unspent.tolist() == [0, 0, 0, 0]  # unguided: no gradients, no autoencoder
    torch.testing.assert_close(out.latents[0], z[0])  # nfe 0 = no change
    assert not torch.equal(out.latents[1], z[1])


def test_a_sample_runs_the_last_nfe_grid_steps():
    """A sample with nfe = n is first evaluated at grid[N - n] and last at the grid's clean end."""
    seen = []

    class Recording(GaussianPrior):
        def eps(self, z_i, i):
            seen.append(i.tolist())
            return super().eps(z_i, i)

    grid = ddim(num_steps=20).grid(Schedule.ldm())
    sample(Recording(), ddim(num_steps=20), torch.randn(1, 1, 2, 2), torch.tensor([3]), sample_generators([0]))
    assert seen == [[int(grid[17])], [int(grid[18])], [int(grid[19])]] == [[101], [51], [1]]


@pytest.mark.parametrize("slots", [1, 2, 5])
@pytest.mark.parametrize("batching,order", [("continuous", "longest_first"), ("continuous", "fifo"),
                                            ("static", "fifo")])
def test_results_do_not_depend_on_slots_batching_or_order(slots, batching, order):
    model = GaussianPrior()
    seeds = [11, 22, 33, 44, 55]
    z = torch.randn(5, 1, 4, 4)
    nfe = torch.tensor([50, 7, 0, 20, 33])
    ref = sample(model, ddim(num_steps=50, delta=1.0), z, nfe, sample_generators(seeds))
    out = sample(model, ddim(num_steps=50, delta=1.0), z, nfe, sample_generators(seeds), batch_size=slots,
                 batching=batching, order=order)
    torch.testing.assert_close(out.latents, ref.latents)
    assert out.nfe.tolist() == nfe.tolist() and out.score_forwards.tolist() == nfe.tolist()


def _chunks(model, nfes, size):
    """Chunks of ``size`` samples with the given reverse steps (keys: their positions)."""
    for k in range(0, len(nfes), size):
        part = nfes[k:k + size]
        yield Chunk(torch.randn(len(part), 1, 2, 2), torch.tensor(part), None, {},
                    sample_generators(range(k, k + len(part))), list(range(k, k + len(part))))


def test_continuous_batching_refills_slots_and_keeps_them_busy():
    model = GaussianPrior()
    nfes = [40, 5, 5, 5, 5, 5, 5, 5, 5, 30, 10, 10]
    static = Engine(model, None, ddpm(), batch_size=4, batching="static", order="fifo")
    done_static = [f.key for out in static.run(_chunks(model, nfes, 4)) for f in out]
    cont = Engine(model, None, ddpm(), batch_size=4, batching="continuous")
    done_cont = [f.key for out in cont.run(_chunks(model, nfes, 4)) for f in out]
    assert sorted(done_static) == sorted(done_cont) == list(range(12))
    assert static.stats.busy_slot_steps == cont.stats.busy_slot_steps == sum(nfes)
    assert static.stats.batched_steps == 40 + 5 + 30  # each static batch runs until its slowest sample is done
    assert cont.stats.batched_steps == 40  # the long ones run side by side, short ones fill the other slots
    assert cont.stats.occupancy > 0.75 > static.stats.occupancy
    assert cont.stats.busy == 0


def test_nfe_out_of_range_is_an_error():
    model = GaussianPrior()
    with pytest.raises(ValueError, match="num_steps"):
        sample(model, ddim(num_steps=50), torch.zeros(1, 1, 1, 1), torch.tensor([51]), sample_generators([0]))


def test_ddpm_and_ddim_from_mixed_starts():
    model = GaussianPrior()
    z = torch.randn(2, 1, 2, 2)
    out = sample(model, ddim(num_steps=20), z, torch.tensor([20, 0]), sample_generators([1, 2]))
    assert out.nfe.tolist() == [20, 0]
    torch.testing.assert_close(out.latents[1], z[1])
    assert abs(out.latents[0].mean().item() - MU) < 3 * S  # deterministic DDIM from pure noise: near the prior
    out = sample(model, ddpm(), z, torch.tensor([5, 1]), sample_generators([1, 2]))
    assert out.nfe.tolist() == [5, 1]

"""Start-time policies: SNR matching, the start-level convention, noise correction, clamp, fixed start, baseline."""

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.diffusion.steps import sampling_grid
from flashdiff.engine import sample
from flashdiff.operators import GaussianBlur
from flashdiff.severity import AE, Baseline, Fixed, Flash, FlashDDIMEncoding, noise_correction
from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.ddpm import ddpm
from flashdiff.solvers.latent_dps import latent_dps
from tests.conftest import AnalyticLDM, run


class KnownSeverity(torch.nn.Module):
    """A stand-in encoder: ẑ = E0(y), σ̂² given."""

    def __init__(self, sigma2):
        super().__init__()
        self.sigma2 = torch.as_tensor(sigma2, dtype=torch.float32)

    def forward(self, y):
        return 2.0 * y - 1.0, self.sigma2[: y.shape[0]]


def _grid(n):
    return sampling_grid(1000, n)


def test_flash_matches_snr_by_brute_force_and_runs_from_the_matched_level():
    model = AnalyticLDM()
    sigma2 = torch.tensor([1e-5, 0.01, 0.05, 0.3, 5.0])
    y = torch.rand(5, 3, 8, 8)
    for num_steps in (1000, 500, 100, 20):
        grid = _grid(num_steps)
        out = Flash(KnownSeverity(sigma2), c=1.0)(model, y, grid, generators(range(5)))
        snr = model.schedule.snr()[grid]
        for b in range(5):
            k = int((snr - 1 / sigma2[b].double()).abs().argmin())
            assert int(out.nfe[b]) == num_steps - k  # grid[k] down to the clean end
            assert out.t_start[b] == int(grid[k])  # the step of the first score evaluation
        if num_steps == 1000:  # DDPM: a start matched to step i runs i + 1 steps (i, ..., 0)
            assert out.nfe.tolist() == [t + 1 for t in out.t_start]
    assert out.nfe[0] == 1 and out.nfe.tolist() == sorted(out.nfe.tolist())  # monotone in σ̂²
    torch.testing.assert_close(out.sigma2_hat, sigma2)


@pytest.mark.parametrize("num_steps", [1000, 100, 20])
def test_the_first_unet_call_is_at_the_recorded_t_start_and_nfe_counts_the_calls(num_steps):
    calls = []

    class Recording(AnalyticLDM):
        def eps(self, z_i, i):
            calls.append(i.tolist())
            return super().eps(z_i, i)

    model, grid = Recording(), _grid(num_steps)
    y = torch.rand(1, 3, 8, 8)
    start = Flash(KnownSeverity([0.1]))(model, y, grid, generators([0]))
    solver = ddpm() if num_steps == 1000 else ddim(num_steps=num_steps, delta=1.0)
    out = sample(model, solver, start.latents, start.nfe, generators([0]))
    assert calls[0] == [start.t_start[0]] and len(calls) == int(start.nfe[0]) == int(out.score_forwards[0])
    assert calls[-1] == [int(grid[-1])]  # ends at the grid's cleanest entry
    assert start.t_start[0] > 0 and model.schedule.snr()[start.t_start[0]] == pytest.approx(10, rel=0.5)


def test_fixed_start_100_on_ddpm_runs_101_steps_from_step_100():
    calls = []

    class Recording(AnalyticLDM):
        def eps(self, z_i, i):
            calls.append(int(i[0]))
            return super().eps(z_i, i)

    model, y = Recording(), torch.rand(2, 3, 8, 8)
    start = Fixed(KnownSeverity([0.01, 0.2]), t_start=100)(model, y, _grid(1000), generators(range(2)))
    assert start.nfe.tolist() == [101, 101] and start.t_start == [100, 100]
    sample(model, ddpm(), start.latents[:1], start.nfe[:1], generators([0]))
    assert calls == list(range(100, -1, -1))


def test_nothing_diffused_only_where_c_sigma2_is_zero():
    model = AnalyticLDM()
    y = torch.rand(3, 3, 8, 8)
    out = Flash(KnownSeverity([1e-9, 0.0, 0.05]))(model, y, _grid(1000), generators(range(3)))
    assert out.nfe.tolist()[:2] == [1, 0] and out.t_start[:2] == [0, None]  # tiny σ̂²: one step at the clean end
    torch.testing.assert_close(out.latents[1], 2 * y[1] - 1)  # σ̂² = 0: ẑ itself, no diffusion
    zero_c = Flash(KnownSeverity([0.05, 0.3]), c=0.0)(model, y[:2], _grid(1000), generators(range(2)))
    assert zero_c.nfe.tolist() == [0, 0] and zero_c.t_start == [None, None]
    op = GaussianBlur(kernel_size=5)
    params = op.draw(torch.tensor([3, 4, 5]), tuple(y.shape))
    res = run(latent_dps(eta=0.5), model, op, y, params, out.latents, out.nfe, generators(range(3)))
    assert res.nfe.tolist() == out.nfe.tolist()
    torch.testing.assert_close(res.latents[1], 2 * y[1] - 1)


def test_noise_correction_variance_and_clamp():
    z_hat = torch.full((4000, 1, 2, 2), 0.5)
    sigma2 = torch.full((4000,), 0.1)
    z = noise_correction(z_hat, sigma2, 1.2, generators(range(4000)))
    resid = z - (1 - 0.12) ** 0.5 * 0.5
    assert resid.mean().abs() < 0.01 and resid.var().item() == pytest.approx(0.12, rel=0.05)
    big = noise_correction(z_hat[:3], torch.tensor([0.9, 2.0, -1.0]), 1.2, generators(range(3)))
    assert torch.isfinite(big).all()  # c σ² > 1 is clamped to 1 (pure noise), never NaN
    torch.testing.assert_close(big[0], torch.randn((1, 2, 2), generator=generators([0])[0]))
    torch.testing.assert_close(big[2], z_hat[2])  # negative clamps to 0: ẑ itself


def test_fixed_start_is_the_same_for_every_sample():
    model = AnalyticLDM()
    y = torch.rand(3, 3, 8, 8)
    enc = KnownSeverity([0.01, 0.1, 0.2])
    out = Fixed(enc, t_start=73)(model, y, _grid(1000), generators(range(3)))
    assert out.nfe.tolist() == [74] * 3 and out.t_start == [73] * 3 and out.sigma2_hat is not None
    out = Fixed(enc, t_start=73)(model, y, _grid(20), generators(range(3)))
    assert out.t_start == [51] * 3 and out.nfe.tolist() == [2] * 3  # nearest DDIM-20 step: 51, then 1
    with pytest.raises(ValueError, match="adapter.t_start"):
        Fixed(enc, t_start=1000)(model, y, _grid(1000), generators(range(3)))


def test_baseline_and_ae():
    model = AnalyticLDM()
    y = torch.rand(2, 3, 8, 8)
    out = Baseline()(model, y, _grid(500), generators([0, 1]))
    assert out.nfe.tolist() == [500, 500] and out.t_start == [999, 999] and out.latents.shape == (2, 3, 8, 8)
    assert Baseline()(model, y, _grid(20), generators([0, 1])).t_start == [951, 951]  # the grid's top
    out = AE(KnownSeverity([0.1, 0.2]))(model, y, _grid(500), generators([0, 1]))
    assert out.nfe.tolist() == [0, 0] and out.t_start == [None, None]
    torch.testing.assert_close(out.latents, 2 * y - 1)


def test_ddim_encoding_starts_where_flash_does_costs_its_forwards_and_inverts_ddim_exactly():
    model = AnalyticLDM()
    sigma2 = torch.tensor([0.0, 0.02, 0.2])
    y = torch.rand(3, 3, 8, 8)
    enc = KnownSeverity(sigma2)
    ref = Flash(enc)(model, y, _grid(100), generators(range(3)))
    model.eps_rows = 0
    out = FlashDDIMEncoding(enc)(model, y, _grid(100), generators(range(3)))
    assert out.nfe.tolist() == ref.nfe.tolist() and out.t_start == ref.t_start
    assert out.nfe[0] == 0 and out.score_forwards[0] == 0  # σ̂² = 0: ẑ itself, no forward
    torch.testing.assert_close(out.latents[0], 2 * y[0] - 1)
    assert out.score_forwards.tolist() == out.nfe.tolist() and model.eps_rows == int(out.nfe.sum())
    alone = FlashDDIMEncoding(KnownSeverity(sigma2[2:]))(model, y[2:], _grid(100), generators([2]))
    torch.testing.assert_close(alone.latents[0], out.latents[2])  # batch invariance
    assert not torch.allclose(out.latents[2], 2 * y[2] - 1, atol=1e-2)  # it did move toward noise


class ConstantEps(AnalyticLDM):
    """A score model that predicts the same ε everywhere: DDIM inversion and δ = 0 DDIM are exact inverses."""

    def eps(self, z_i, i):
        self.eps_rows += z_i.shape[0]
        return torch.full_like(z_i, 0.3)


@pytest.mark.parametrize("num_steps", [20, 100, 1000])
def test_ddim_encoding_then_deterministic_ddim_returns_z_hat(num_steps):
    model, y = ConstantEps(), torch.rand(3, 3, 8, 8)
    enc = KnownSeverity(torch.tensor([0.005, 0.05, 0.5]))
    start = FlashDDIMEncoding(enc)(model, y, _grid(num_steps), generators(range(3)))
    assert (start.nfe > 0).all()
    back = sample(model, ddim(num_steps=num_steps, delta=0.0), start.latents, start.nfe, generators(range(3)))
    assert (back.latents - (2 * y - 1)).abs().max().item() < 1e-5

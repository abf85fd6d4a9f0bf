"""Start-time policies: SNR matching, noise correction, clamp, start 0, fixed start, the baseline."""

import pytest
import torch

from flashdiff.data.seeding import generators
from flashdiff.diffusion.steps import sampling_grid
from flashdiff.operators import GaussianBlur
from flashdiff.severity import ae, fixed, flash, noise_correction, none
from flashdiff.solvers import latent_dps
from tests.conftest import AnalyticLDM


class KnownSeverity(torch.nn.Module):
    """A stand-in encoder: ẑ = E0(y), σ̂² given."""

    def __init__(self, sigma2):
        super().__init__()
        self.sigma2 = torch.as_tensor(sigma2, dtype=torch.float32)

    def forward(self, y):
        return 2.0 * y - 1.0, self.sigma2[: y.shape[0]]


def test_flash_matches_snr_by_brute_force_and_costs_the_matched_step():
    model = AnalyticLDM()
    sigma2 = torch.tensor([1e-5, 0.01, 0.05, 0.3, 5.0])
    y = torch.rand(5, 3, 8, 8)
    for num_steps in (1000, 500, 20):
        out = flash(model, y, num_steps, generators(range(5)), encoder=KnownSeverity(sigma2), c=1.0)
        grid = sampling_grid(1000, num_steps)
        snr = model.schedule.snr()[grid]
        for b in range(5):
            k = int((snr - 1 / sigma2[b].double()).abs().argmin())
            assert int(out.steps[b]) == num_steps - 1 - k
            assert out.t_start[b] == (int(grid[k]) if out.steps[b] > 0 else None)
        if num_steps == 1000:  # DDPM: a start matched to step i costs i NFE
            assert out.steps.tolist() == [t or 0 for t in out.t_start]
    assert out.steps[0] == 0 and out.steps.tolist() == sorted(out.steps.tolist())  # monotone in σ̂²
    torch.testing.assert_close(out.sigma2_hat, sigma2)


def test_start_zero_returns_z_hat_with_no_diffusion():
    model = AnalyticLDM()
    y = torch.rand(2, 3, 8, 8)
    out = flash(model, y, 1000, generators([0, 1]), encoder=KnownSeverity([1e-6, 0.05]))
    assert out.steps[0] == 0 and out.t_start[0] is None
    torch.testing.assert_close(out.latents[0], 2 * y[0] - 1)
    op = GaussianBlur(kernel_size=5)
    params = op.draw(torch.tensor([3, 4]), tuple(y.shape))
    res = latent_dps(model, op, y, params, out.latents, out.steps, generators=generators([0, 1]), eta=0.5)
    assert res.nfe.tolist() == out.steps.tolist()
    torch.testing.assert_close(res.latents[0], 2 * y[0] - 1)


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
    out = fixed(model, y, 1000, generators(range(3)), encoder=KnownSeverity([0.01, 0.1, 0.2]), start=73)
    assert out.steps.tolist() == [73] * 3 and out.t_start == [73] * 3 and out.sigma2_hat is not None
    out = fixed(model, y, 20, generators(range(3)), encoder=KnownSeverity([0.01, 0.1, 0.2]), start=73)
    assert out.t_start == [51] * 3 and out.steps.tolist() == [1] * 3  # nearest DDIM-20 step, one step below
    with pytest.raises(ValueError, match="adapter.start"):
        fixed(model, y, 1000, generators(range(3)), encoder=KnownSeverity([0.1] * 3), start=1000)


def test_baseline_and_ae():
    model = AnalyticLDM()
    y = torch.rand(2, 3, 8, 8)
    out = none(model, y, 500, generators([0, 1]))
    assert out.steps.tolist() == [500, 500] and out.t_start == [999, 999] and out.latents.shape == (2, 3, 8, 8)
    out = ae(model, y, 500, generators([0, 1]), encoder=KnownSeverity([0.1, 0.2]))
    assert out.steps.tolist() == [0, 0] and out.t_start == [None, None]
    torch.testing.assert_close(out.latents, 2 * y - 1)


def test_ddim_encoding_starts_where_flash_does_costs_its_forwards_and_inverts_ddim():
    from flashdiff.severity import flash_ddim_encoding
    from flashdiff.solvers import ddim

    model = AnalyticLDM()
    sigma2 = torch.tensor([1e-6, 0.02, 0.2])
    y = torch.rand(3, 3, 8, 8)
    enc = KnownSeverity(sigma2)
    ref = flash(model, y, 100, generators(range(3)), encoder=enc)
    model.eps_rows = 0
    out = flash_ddim_encoding(model, y, 100, generators(range(3)), encoder=enc)
    assert out.steps.tolist() == ref.steps.tolist() and out.t_start == ref.t_start
    assert out.steps[0] == 0 and out.score_forwards[0] == 0  # start 0: ẑ itself, no forward
    torch.testing.assert_close(out.latents[0], 2 * y[0] - 1)
    expected = [s + 1 if s > 0 else 0 for s in out.steps.tolist()]  # clean -> grid[N-1] -> ... -> grid[k]
    assert out.score_forwards.tolist() == expected and model.eps_rows == sum(expected)
    alone = flash_ddim_encoding(model, y[2:], 100, generators([2]), encoder=KnownSeverity(sigma2[2:]))
    torch.testing.assert_close(alone.latents[0], out.latents[2])  # batch invariance
    assert not torch.allclose(out.latents[2], 2 * y[2] - 1, atol=1e-2)  # it did move toward noise
    errors = []
    for n in (100, 1000):  # deterministic DDIM undoes it, up to a discretisation error that shrinks with the step
        enc_n = flash_ddim_encoding(model, y, n, generators(range(3)), encoder=enc)
        back = ddim(model, None, y, {}, enc_n.latents, enc_n.steps, generators=generators(range(3)), num_steps=n,
                    delta=0.0)
        errors.append((back.latents - (2 * y - 1)).abs().max().item())
    assert errors[1] < 5e-3 and errors[1] < errors[0] / 5

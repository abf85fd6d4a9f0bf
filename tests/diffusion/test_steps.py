"""Step helpers on an analytic Gaussian latent model, and against diffusers' schedulers for scalar timesteps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from diffusers import DDIMScheduler

from flashdiff.diffusion.schedule import LDM_BETA_END, LDM_BETA_START, Schedule, _bc, ldm_scheduler
from flashdiff.diffusion.steps import (
    ddim_inversion_step,
    ddim_step,
    ddpm_step,
    resample_moments,
    sampling_grid,
    snr_match,
    stochastic_resample,
    tweedie_z0,
)

SCHEDULE = Schedule.ldm()
SHAPE = (1, 2, 2)  # per-sample latent shape (C, h, w)
MU = torch.tensor([0.5, -1.0, 2.0, 0.0]).view(1, *SHAPE)  # z0 ~ N(MU, S² I) per dimension
S = torch.tensor([0.5, 1.0, 0.7, 1.5]).view(1, *SHAPE)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    # The chains are many tiny ops: with 2 cores shared, intra-op threads only add contention.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def exact_eps(z: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """E[ε | z_i] for Gaussian z0: b_i (z_i - a_i μ) / (a_i² s² + b_i²)."""
    abar = SCHEDULE.abar(i)
    a, b = _bc(abar.sqrt(), z), _bc((1 - abar).sqrt(), z)
    return b * (z - a * MU) / (a**2 * S**2 + b**2)


def posterior_mean(z: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """E[z0 | z_i] = μ + a_i s² (z_i - a_i μ) / (a_i² s² + b_i²)."""
    abar = SCHEDULE.abar(i)
    a, b = _bc(abar.sqrt(), z), _bc((1 - abar).sqrt(), z)
    return MU + a * S**2 * (z - a * MU) / (a**2 * S**2 + b**2)


def full(n: int, v: int) -> torch.Tensor:
    return torch.full((n,), v, dtype=torch.int64)


def assert_moments(z0: torch.Tensor, std_rtol: float) -> None:
    # 4000 samples: standard errors ~0.024 (mean, s = 1.5) and ~1.1 % (std).
    torch.testing.assert_close(z0.mean(0, keepdim=True), MU, atol=0.06, rtol=0.0)
    torch.testing.assert_close(z0.std(0, keepdim=True), S, rtol=std_rtol, atol=0.0)


def test_tweedie_is_posterior_mean() -> None:
    g = torch.Generator().manual_seed(0)
    i = torch.tensor([0, 10, 300, 999])
    z = torch.randn(4, *SHAPE, generator=g, dtype=torch.float64) * 2  # 1/a_999 ~ 84 amplifies float32 rounding
    torch.testing.assert_close(tweedie_z0(SCHEDULE, z, exact_eps(z, i), i), posterior_mean(z, i))


def test_ddpm_chain_reaches_data_distribution() -> None:
    g = torch.Generator().manual_seed(1)
    n = 4000
    z = torch.randn(n, *SHAPE, generator=g)
    for step in range(999, -1, -1):
        i = full(n, step)
        z = ddpm_step(SCHEDULE, z, exact_eps(z, i), i, torch.randn(z.shape, generator=g))
    # The exact discrete chain (moments propagated in float64) ends at std 0.986 s for s = 0.5: β̃ drops Var(z0|z_i).
    assert_moments(z, 0.04)


def test_ddim_deterministic_50_steps_reaches_data_distribution() -> None:
    g = torch.Generator().manual_seed(2)
    n = 4000
    grid = sampling_grid(1000, 50)
    prev = torch.cat([grid[1:], torch.tensor([-1])])
    z = torch.randn(n, *SHAPE, generator=g)
    for step, step_prev in zip(grid.tolist(), prev.tolist()):
        i = full(n, step)
        z = ddim_step(SCHEDULE, z, exact_eps(z, i), i, full(n, step_prev), None, 0.0)
    # First-order DDIM shrinks the std: a_p a s² + b_p b <= sqrt(a_p² s² + b_p²) sqrt(a² s² + b²) (Cauchy-Schwarz).
    # The exact 50-step chain ends at std (0.932, 0.964, 0.951, 0.971) s and mean within 0.02 of μ.
    assert_moments(z, 0.09)


def test_ddim_inversion_round_trip() -> None:
    g = torch.Generator().manual_seed(3)
    n = 256
    z0 = MU + S * torch.randn(n, *SHAPE, generator=g)
    up = torch.cat([torch.tensor([-1]), sampling_grid(1000, 500).flip(0)[:100]])  # -1, 1, 3, ..., 199 (App. E)
    z = z0
    for lo, hi in zip(up[:-1].tolist(), up[1:].tolist()):
        z = ddim_inversion_step(SCHEDULE, z, exact_eps(z, full(n, lo)), full(n, lo), full(n, hi))
    assert (z - z0).abs().mean() > 0.2  # the encoding moved well away from z0 (abar_199 ~ 0.71)
    for hi, lo in zip(up.flip(0)[:-1].tolist(), up.flip(0)[1:].tolist()):
        z = ddim_step(SCHEDULE, z, exact_eps(z, full(n, hi)), full(n, hi), full(n, lo))
    # ε is taken at the start of each step in both directions, so the round trip is exact only to first order.
    assert (z - z0).abs().mean() < 0.015 and (z - z0).abs().max() < 0.1


def test_ddim_delta_one_consecutive_equals_ddpm() -> None:
    g = torch.Generator().manual_seed(4)
    z, eps, noise = (torch.randn(4, *SHAPE, generator=g) for _ in range(3))
    i = torch.tensor([999, 500, 1, 0])
    ddim = ddim_step(SCHEDULE, z, eps, i, i - 1, noise, 1.0)
    torch.testing.assert_close(ddim, ddpm_step(SCHEDULE, z, eps, i, noise), rtol=1e-5, atol=1e-5)


def test_ddpm_step_zero_returns_tweedie() -> None:
    g = torch.Generator().manual_seed(5)
    z, eps, noise = (torch.randn(3, *SHAPE, generator=g) for _ in range(3))
    i = full(3, 0)
    torch.testing.assert_close(ddpm_step(SCHEDULE, z, eps, i, noise), tweedie_z0(SCHEDULE, z, eps, i))


def test_per_sample_steps_match_rowwise() -> None:
    g = torch.Generator().manual_seed(6)
    z, eps, noise = (torch.randn(5, 3, 4, 4, generator=g) for _ in range(3))
    i = torch.tensor([999, 500, 37, 1, 0])
    i_prev = torch.tensor([949, 480, 0, -1, -1])
    delta = torch.tensor([0.0, 0.5, 1.0, 1.0, 0.3])
    batched = [tweedie_z0(SCHEDULE, z, eps, i), ddpm_step(SCHEDULE, z, eps, i, noise),
               ddim_step(SCHEDULE, z, eps, i, i_prev, noise, delta),
               ddim_inversion_step(SCHEDULE, z, eps, i_prev, i)]
    for r in range(5):
        s = slice(r, r + 1)
        rows = [tweedie_z0(SCHEDULE, z[s], eps[s], i[s]), ddpm_step(SCHEDULE, z[s], eps[s], i[s], noise[s]),
                ddim_step(SCHEDULE, z[s], eps[s], i[s], i_prev[s], noise[s], delta[r].item()),
                ddim_inversion_step(SCHEDULE, z[s], eps[s], i_prev[s], i[s])]
        for b, row in zip(batched, rows):
            torch.testing.assert_close(b[s], row)


def test_ddim_without_noise_needs_zero_delta() -> None:
    z = torch.zeros(2, *SHAPE)
    with pytest.raises(ValueError):
        ddim_step(SCHEDULE, z, z, full(2, 10), full(2, 5), None, 0.5)


@pytest.mark.parametrize("t", [999, 500, 1, 0])
def test_ddpm_step_matches_diffusers(t: int) -> None:
    sched = ldm_scheduler()
    g = torch.Generator().manual_seed(7)
    z, eps = torch.randn(3, 3, 4, 4, generator=g), torch.randn(3, 3, 4, 4, generator=g)
    ref = sched.step(eps, t, z, generator=torch.Generator().manual_seed(11)).prev_sample
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(11))  # what step() draws
    torch.testing.assert_close(ddpm_step(SCHEDULE, z, eps, full(3, t), noise), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_steps,delta,alpha_to_one", [(500, 1.0, True), (500, 0.0, False), (20, 0.5, True),
                                                          (20, 1.0, False)])
def test_ddim_step_matches_diffusers(num_steps: int, delta: float, alpha_to_one: bool) -> None:
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=LDM_BETA_START, beta_end=LDM_BETA_END,
                          beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=alpha_to_one,
                          steps_offset=1, timestep_spacing="leading")
    sched.set_timesteps(num_steps)
    grid = sampling_grid(1000, num_steps)
    assert torch.equal(sched.timesteps, grid)
    g = torch.Generator().manual_seed(8)
    z, eps, noise = (torch.randn(3, 3, 4, 4, generator=g) for _ in range(3))
    for t in [grid[0].item(), grid[num_steps // 2].item(), grid[-1].item()]:
        ref = sched.step(eps, t, z, eta=delta, variance_noise=noise).prev_sample
        t_prev = t - 1000 // num_steps
        t_prev = t_prev if t_prev >= 0 else (-1 if alpha_to_one else 0)  # ldm ends on abar_0
        ours = ddim_step(SCHEDULE, z, eps, full(3, t), full(3, t_prev), noise, delta)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_sampling_grid_values() -> None:
    assert torch.equal(sampling_grid(1000, 1000), torch.arange(999, -1, -1))
    assert torch.equal(sampling_grid(1000, 500), torch.arange(999, 0, -2))
    assert sampling_grid(1000, 20).tolist() == list(range(951, 0, -50))
    assert sampling_grid(1000, 20).dtype == torch.int64
    with pytest.raises(ValueError):
        sampling_grid(1000, 0)


@pytest.mark.parametrize("num_steps", [1000, 500, 20])
def test_snr_match_is_brute_force_argmin(num_steps: int) -> None:
    grid = sampling_grid(1000, num_steps)
    sigma2 = torch.cat([torch.tensor([0.0, 1e-4, 0.01, 0.1, 0.5, 1.0, 5.0, 1e3]), torch.rand(32) * 2])
    k = snr_match(SCHEDULE, grid, sigma2)
    snr = SCHEDULE.snr()
    for s2, kk in zip(sigma2[1:].tolist(), k[1:].tolist()):
        target = 1.0 / s2
        best = min(range(len(grid)), key=lambda j: abs(snr[grid[j]].item() - target))
        assert kk == best
    assert k.dtype == torch.int64 and k.shape == sigma2.shape
    assert grid[k[0]] == grid.min()  # σ̂² = 0: the cleanest step


def _resample_closed_form(i: int, omega: float, z0_y: torch.Tensor, z_prime: torch.Tensor):
    """METHOD.md §4 written out on the 1000-step table: (mean, variance) of ReSample's resampling at level i."""
    table = SCHEDULE.alphas_cumprod
    abar = table[i].item() if i >= 0 else 1.0
    abar_prev = table[i - 1].item() if i >= 1 else 1.0
    w2 = omega * (1 - abar_prev) / abar * (1 - abar / abar_prev)
    b2 = 1 - abar
    if b2 == 0:  # the clean end: a point mass at ẑ0(y)
        return z0_y, 0.0
    return (w2 * abar**0.5 * z0_y + b2 * z_prime) / (w2 + b2), w2 * b2 / (w2 + b2)


@pytest.mark.parametrize("i", [999, 401, 101, 21, 1, 0, -1])
def test_resample_moments_match_the_closed_form_and_the_draws(i: int) -> None:
    omega, n = 400.0, 20000
    z0_y, z_prime = torch.tensor([0.8, -0.3]).view(1, 2, 1, 1), torch.tensor([-0.5, 1.2]).view(1, 2, 1, 1)
    steps = torch.full((1,), i)
    mean, var = resample_moments(SCHEDULE, z0_y.double(), z_prime.double(), steps, omega)
    want_mean, want_var = _resample_closed_form(i, omega, z0_y.double(), z_prime.double())
    torch.testing.assert_close(mean, want_mean)
    assert var.item() == pytest.approx(want_var, rel=1e-9, abs=1e-15)
    gen = torch.Generator().manual_seed(i + 7)
    noise = torch.randn(n, 2, 1, 1, generator=gen, dtype=torch.float64)
    draws = stochastic_resample(SCHEDULE, z0_y.double().expand(n, -1, -1, -1), z_prime.double().expand(n, -1, -1, -1),
                                steps.expand(n), omega, noise)
    sd = want_var**0.5
    torch.testing.assert_close(draws.mean(0, keepdim=True), want_mean, atol=4 * sd / n**0.5 + 1e-12, rtol=0)
    assert draws.var(0).flatten().tolist() == pytest.approx([want_var] * 2, rel=0.05, abs=1e-12)


def test_resample_weight_moves_from_the_unconditional_sample_to_the_estimate() -> None:
    z0_y, z_prime = torch.ones(3, 1, 1, 1), torch.zeros(3, 1, 1, 1)
    steps = torch.tensor([101, 101, 101])
    means = [resample_moments(SCHEDULE, z0_y, z_prime, steps, w)[0].flatten()[0].item() for w in (0.0, 400.0, 1e9)]
    a = SCHEDULE.alphas_cumprod[101].sqrt().item()
    assert means[0] == 0.0 and 0.0 < means[1] < means[2] and means[2] == pytest.approx(a)  # ω: z' -> a ẑ0(y)

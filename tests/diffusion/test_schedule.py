"""The LDM schedule: closed-form betas, abar, SNR, and forward diffusion against diffusers."""

from __future__ import annotations

import torch

from flashdiff.diffusion.schedule import Schedule, ldm_scheduler


def _closed_form_betas() -> torch.Tensor:
    # ldm "linear" (= diffusers "scaled_linear"): beta = linspace(sqrt(0.0015), sqrt(0.0195), 1000)^2
    return torch.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=torch.float64) ** 2


def test_ldm_betas_alphas_snr_closed_form() -> None:
    s = Schedule.ldm()
    betas = _closed_form_betas()
    abar = torch.cumprod(1.0 - betas, dim=0)
    assert s.num_steps == 1000
    torch.testing.assert_close(s.betas, betas, rtol=1e-6, atol=1e-9)  # diffusers builds them in float32
    torch.testing.assert_close(s.alphas_cumprod, abar, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(s.snr(), abar / (1.0 - abar), rtol=1e-4, atol=0.0)
    assert (s.snr().diff() < 0).all()
    assert abs(s.alphas_cumprod[0].item() - (1.0 - 0.0015)) < 1e-7
    assert abs(s.alphas_cumprod[-1].item() - abar[-1].item()) < 1e-8  # ~1.42e-4 for this schedule


def test_a_b_unit_norm_and_abar_minus_one() -> None:
    s = Schedule.ldm()
    i = torch.arange(1000)
    torch.testing.assert_close(s.a(i) ** 2 + s.b(i) ** 2, torch.ones(1000))
    torch.testing.assert_close(s.abar(i), s.alphas_cumprod)
    assert s.abar(torch.tensor([-1, 0]))[0].item() == 1.0  # abar_{-1} := 1, not a wrap-around


def test_q_sample_matches_diffusers_add_noise_per_sample() -> None:
    s, sched = Schedule.ldm(), ldm_scheduler()
    g = torch.Generator().manual_seed(0)
    z0, noise = torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g)
    i = torch.tensor([0, 1, 250, 998, 999])
    torch.testing.assert_close(s.q_sample(z0, i, noise), sched.add_noise(z0, noise, i), rtol=1e-5, atol=1e-5)

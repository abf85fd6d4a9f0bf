"""Pure reverse-diffusion step helpers with per-sample steps: Tweedie, DDPM, DDIM, DDIM inversion, ReSample's
stochastic resampling, grids, SNR matching.

Conventions: latents ``z`` are (B, C, h, w); steps ``i`` are per-sample (B,) int64 training steps in [0, T), and
``-1`` denotes the clean end with ``abar_{-1} := 1``. Coefficients are computed in float64 and cast to the latents'
dtype. No diffusers ``scheduler.step()`` (it takes one scalar timestep for the whole batch).
"""

from __future__ import annotations

import torch
from torch import Tensor

from flashdiff.diffusion.schedule import Schedule, _bc
from flashdiff.diffusion.schedule import sampling_grid as sampling_grid  # re-exported: its home before paths


def tweedie_z0(schedule: Schedule, z_i: Tensor, eps: Tensor, i: Tensor) -> Tensor:
    """Tweedie estimate ``ẑ0 = (z_i - b_i ε) / a_i`` (METHOD.md §4); z_i, eps (B, C, h, w), i (B,) -> (B, C, h, w)."""
    abar = schedule.abar(i)
    # E[z0 | z_i] for q(z_i | z0) = N(a_i z0, b_i² I), with ε the (predicted) noise E[ε | z_i].
    return (z_i - _bc((1.0 - abar).sqrt(), z_i) * eps) / _bc(abar.sqrt(), z_i)


def ddpm_step(schedule: Schedule, z_i: Tensor, eps: Tensor, i: Tensor, noise: Tensor) -> Tensor:
    """Ancestral DDPM step i -> i-1 (Ho et al. eqs. 6-7, β̃ "fixed_small"); z_i, eps, noise (B, C, h, w), i (B,)."""
    return ddpm_from_z0(schedule, tweedie_z0(schedule, z_i, eps, i), z_i, i, noise)  # no clipping


def ddpm_from_z0(schedule: Schedule, z0: Tensor, z_i: Tensor, i: Tensor, noise: Tensor) -> Tensor:
    """The DDPM posterior draw ``q(z_{i-1} | z_i, ẑ0)`` for a given ẑ0 (Tweedie's, or one updated by guidance on ẑ0);
    z0, z_i, noise (B, C, h, w), i (B,)."""
    abar = schedule.abar(i)
    abar_prev = schedule.abar(i - 1)  # abar_{-1} := 1, so step 0 lands on ẑ0 exactly
    alpha = abar / abar_prev  # α_i = 1 - β_i
    beta = 1.0 - alpha
    # Posterior q(z_{i-1} | z_i, ẑ0): mean = sqrt(ᾱ_{i-1}) β_i/(1-ᾱ_i) ẑ0 + sqrt(α_i) (1-ᾱ_{i-1})/(1-ᾱ_i) z_i.
    c0 = abar_prev.sqrt() * beta / (1.0 - abar)
    ci = alpha.sqrt() * (1.0 - abar_prev) / (1.0 - abar)
    # Variance β̃_i = (1-ᾱ_{i-1})/(1-ᾱ_i) β_i, which is 0 at i = 0 (c0 = 1, ci = 0 there: the step returns ẑ0).
    var = (1.0 - abar_prev) / (1.0 - abar) * beta
    return _bc(c0, z_i) * z0 + _bc(ci, z_i) * z_i + _bc(var.sqrt(), z_i) * noise


def ddim_step(schedule: Schedule, z_i: Tensor, eps: Tensor, i: Tensor, i_prev: Tensor,
              noise: Tensor | None = None, delta: float | Tensor = 0.0) -> Tensor:
    """DDIM step i -> i_prev (Song et al. eq. 12, stochasticity δ); z_i, eps, noise (B, C, h, w), i, i_prev (B,).

    ``i_prev = -1`` takes ``abar_prev = 1`` (diffusers ``set_alpha_to_one=True``); ldm's DDIM ends with
    ``i_prev = 0`` instead (``abar_prev = abar_0``). ``delta`` is a float or a per-sample (B,) tensor;
    ``noise`` may be None only where every σ_i is 0.
    """
    return ddim_from_z0(schedule, tweedie_z0(schedule, z_i, eps, i), eps, i, i_prev, noise, delta)


def ddim_from_z0(schedule: Schedule, z0: Tensor, eps: Tensor, i: Tensor, i_prev: Tensor,
                 noise: Tensor | None = None, delta: float | Tensor = 0.0) -> Tensor:
    """The DDIM update (Song et al. eq. 12) from a given ẑ0 (Tweedie's, or one updated by guidance on ẑ0) and ε;
    z0, eps, noise (B, C, h, w), i, i_prev (B,); as ``ddim_step``."""
    abar = schedule.abar(i)
    abar_prev = schedule.abar(i_prev)
    if isinstance(delta, Tensor):
        delta = delta.to(torch.float64)  # (B,) on the latents' device; a float stays a host scalar (no upload)
    # σ_i = δ sqrt((1-ᾱ_prev)/(1-ᾱ_i)) sqrt(1-ᾱ_i/ᾱ_prev); δ = 1 between consecutive steps is DDPM's β̃_i.
    sigma = delta * ((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev)).clamp_min(0.0).sqrt()
    # z_prev = sqrt(ᾱ_prev) ẑ0 + sqrt(1 - ᾱ_prev - σ²) ε + σ n  ("direction pointing to z_i" + fresh noise).
    c_eps = (1.0 - abar_prev - sigma**2).clamp_min(0.0).sqrt()
    z_prev = _bc(abar_prev.sqrt(), z0) * z0 + _bc(c_eps, z0) * eps
    if noise is None:  # a float δ is checked on the host; only a per-sample tensor δ needs a look at its values
        if (bool((sigma != 0).any()) if isinstance(delta, Tensor) else delta != 0.0):
            raise ValueError("ddim_step with delta > 0 needs noise")
        return z_prev
    return z_prev + _bc(sigma, z0) * noise


def ddim_inversion_step(schedule: Schedule, z_i: Tensor, eps: Tensor, i: Tensor, i_next: Tensor) -> Tensor:
    """DDIM encoding step i -> i_next > i (Song et al. eq. 12, σ = 0, run upward; App. E); z_i, eps (B, C, h, w)."""
    abar_next = schedule.abar(i_next)
    # The δ = 0 DDIM map z_next = sqrt(ᾱ_next) ẑ0 + sqrt(1-ᾱ_next) ε, read upward; i = -1 starts from clean
    # latents (ẑ0 = z_i). Which step ε was evaluated at (i, or i_next as in the authors' code) is the caller's choice.
    z0 = tweedie_z0(schedule, z_i, eps, i)
    return _bc(abar_next.sqrt(), z_i) * z0 + _bc((1.0 - abar_next).sqrt(), z_i) * eps


def resample_omega2(schedule: Schedule, i: Tensor, omega: float) -> Tensor:
    """ReSample's ``ω_i² = ω (1-ᾱ_{i-1})/ᾱ_i (1 - ᾱ_i/ᾱ_{i-1})`` (METHOD.md §4, paper eq. 17); i (B,) -> (B,) float64.

    ``i - 1`` is the previous *training* step, whatever grid the sampler walks (the authors' code; Table 2's ω
    were tuned so); ᾱ below step 0 is 1, so ``ω_0² = ω_{-1}² = 0``.
    """
    abar, abar_prev = schedule.abar(i), schedule.abar(i - 1)
    return omega * (1.0 - abar_prev) / abar * (1.0 - abar / abar_prev)


def resample_moments(schedule: Schedule, z0_y: Tensor, z_prime: Tensor, i: Tensor,
                     omega: float) -> tuple[Tensor, Tensor]:
    """Mean (B, C, h, w) and variance (B,) of ReSample's stochastic resampling at level i (METHOD.md §4, eq. 16).

    ``N((ω_i² a_i ẑ0(y) + b_i² z'_i)/(ω_i² + b_i²), ω_i² b_i²/(ω_i² + b_i²) I)``, the product of
    ``q(z_i | ẑ0(y)) = N(a_i ẑ0(y), b_i² I)`` and ``N(z'_i, ω_i² I)``; z0_y, z_prime (B, C, h, w), i (B,).
    At the clean end (b_i = 0, i = -1) the first factor is a point mass: the result is ẑ0(y), variance 0.
    """
    abar = schedule.abar(i)
    b2 = 1.0 - abar
    w2 = resample_omega2(schedule, i, omega)
    weight = torch.where(b2 > 0, w2 / (w2 + b2), torch.ones_like(b2))  # share of the data-consistent estimate
    mean = _bc(weight * abar.sqrt(), z0_y) * z0_y + _bc(1.0 - weight, z_prime) * z_prime
    return mean, (weight * b2).to(z0_y.dtype)


def stochastic_resample(schedule: Schedule, z0_y: Tensor, z_prime: Tensor, i: Tensor, omega: float,
                        noise: Tensor) -> Tensor:
    """A draw of ReSample's resampling distribution at level i (METHOD.md §4, eq. 16); (B, C, h, w), i (B,)."""
    mean, var = resample_moments(schedule, z0_y, z_prime, i, omega)
    return mean + _bc(var.sqrt(), mean) * noise


def snr_match(schedule: Schedule, grid: Tensor, sigma2: Tensor) -> Tensor:
    """SNR matching ``argmin_k |SNR(grid[k]) - 1/σ̂²|`` (METHOD.md §3, eq. 3); sigma2 (B,) -> positions (B,) int64.

    Returns positions ``k`` into ``grid`` (not training steps): the start step is ``grid[k]``; with a descending
    grid, ``k = 0`` is the noisiest step and ``len(grid) - k`` steps remain. Ties go to the smaller ``k``.
    """
    snr = schedule.snr().to(sigma2.device)[grid.to(sigma2.device)]  # (K,)
    target = 1.0 / sigma2.to(torch.float64)  # (B,); σ̂² = 0 gives inf
    k = (snr[None, :] - target[:, None]).abs().argmin(dim=1)  # (B,)
    # Beyond the largest grid SNR (tiny or zero σ̂², where |SNR - 1/σ̂²| ties at inf) the nearest is the cleanest step.
    return torch.where(target >= snr.max(), snr.argmax(), k)

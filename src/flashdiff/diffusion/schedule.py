"""The LDM noise schedule: ``q(z_i | z0) = N(a_i z0, b_i^2 I)`` with ``a_i = sqrt(abar_i)``, ``b_i^2 = 1 - abar_i``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import DDPMScheduler
from torch import Tensor

from flashdiff.devices import to_device

LDM_BETA_START = 0.0015
LDM_BETA_END = 0.0195
LDM_NUM_STEPS = 1000


def ldm_scheduler(num_train_timesteps: int = LDM_NUM_STEPS, beta_start: float = LDM_BETA_START,
                  beta_end: float = LDM_BETA_END) -> DDPMScheduler:
    """The diffusers scheduler of the LDMs (METHOD.md §1: "scaled_linear" 0.0015 -> 0.0195, 1000 steps)."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                         beta_schedule="scaled_linear", variance_type="fixed_small", clip_sample=False,
                         prediction_type="epsilon")


def pixel_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The pixel DDPM schedule of Ho et al. (linear β 1e-4 → 0.02), as google/ddpm-* models use."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_start=1e-4, beta_end=0.02,
                         beta_schedule="linear")


@dataclass(frozen=True)
class Schedule:
    """Per-step tables of a discrete DDPM schedule, indexed by the training step i = 0..T-1."""

    betas: Tensor  # (T,) float64
    alphas_cumprod: Tensor  # (T,) float64, abar_i
    _tables: dict[torch.device, Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_scheduler(cls, scheduler: DDPMScheduler) -> Schedule:
        """Read ``betas``/``alphas_cumprod`` from a diffusers scheduler (its ``step()`` is not used)."""
        betas = scheduler.betas.to(torch.float64)
        return cls(betas=betas, alphas_cumprod=torch.cumprod(1.0 - betas, dim=0))

    @classmethod
    def ldm(cls) -> Schedule:
        """The 1000-step LDM schedule."""
        return cls.from_scheduler(ldm_scheduler())

    @property
    def num_steps(self) -> int:
        return self.betas.numel()

    def snr(self) -> Tensor:
        """Signal-to-noise ratio per step, ``a_i^2 / b_i^2 = abar_i / (1 - abar_i)``; shape (T,)."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def table(self, device: torch.device) -> Tensor:
        """``[1, abar_0, ..., abar_{T-1}]`` (T + 1,) float64 on ``device``: step -1 (clean) at 0; cached per device,
        so a step's coefficient look-ups copy nothing to the device."""
        if device not in self._tables:
            one = torch.ones(1, dtype=self.alphas_cumprod.dtype)
            self._tables[device] = to_device(torch.cat([one, self.alphas_cumprod]), device)
        return self._tables[device]

    def abar(self, i: Tensor) -> Tensor:
        """``abar_i`` for per-sample steps ``i`` (B,) in [-1, T), as float64 (B,); ``abar_{-1} := 1`` (clean data)."""
        return self.table(i.device)[i + 1]

    def a(self, i: Tensor) -> Tensor:
        """``sqrt(abar_i)`` for per-sample steps ``i`` (B,), as float32 (B,)."""
        return self.abar(i).sqrt().float()

    def b(self, i: Tensor) -> Tensor:
        """``sqrt(1 - abar_i)`` for per-sample steps ``i`` (B,), as float32 (B,)."""
        return (1.0 - self.abar(i)).sqrt().float()

    def q_sample(self, z0: Tensor, i: Tensor, noise: Tensor) -> Tensor:
        """Forward diffusion ``z_i = a_i z0 + b_i eps`` for per-sample steps ``i`` (B,); z0, noise (B, C, h, w)."""
        return _bc(self.a(i), z0) * z0 + _bc(self.b(i), z0) * noise


def _bc(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample vector (B,) to broadcast against ``like`` (B, ...)."""
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

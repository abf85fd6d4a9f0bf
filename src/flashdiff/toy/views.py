"""Exact views of the toy LDM under other parameterisations (METHOD.md §3b, the check): the same ε-network presented
as a v-predictor (``model=toy_ldm_as_v``) or as a rectified-flow velocity predictor on the times with the same SNRs
(``model=toy_ldm_as_flow``). In exact arithmetic every solver gives the same reconstructions as ``model=toy_ldm``;
run through the conversion layer (``LatentDiffusion.eps``), they differ by float rounding only."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.schedule import Schedule, _bc
from flashdiff.diffusion.steps import tweedie_z0


class _View(nn.Module):
    """The toy ε-network behind another prediction; ``forward(z_t, time)`` in the view's own space and time."""

    def __init__(self, unet: nn.Module, schedule: Schedule) -> None:
        super().__init__()
        self.unet, self.schedule = unet, schedule  # the ε-network and its own VP schedule

    def _eps_z0(self, z: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        """ε_θ(z, i) and its Tweedie ẑ0 on the ε-network's own VP path."""
        eps = self.unet(z, i).sample
        return eps, tweedie_z0(self.schedule, z, eps, i)


class AsVPrediction(_View):
    """``v = a ε - b z0`` (diffusers' v-prediction) on the same VP schedule and steps."""

    def forward(self, z: Tensor, i: Tensor) -> Tensor:
        eps, z0 = self._eps_z0(z, i)
        abar = self.schedule.abar(i)
        return _bc(abar.sqrt(), z) * eps - _bc((1.0 - abar).sqrt(), z) * z0


class AsFlow(_View):
    """``u = ε - z0`` on rectified-flow times ``t_i = b_i / (a_i + b_i)`` (``(1 - t)² / t² = ᾱ_i / (1 - ᾱ_i)``), called
    with ``z_t = (1 - t) z0 + t ε`` and diffusers' flow time ``1000 t``."""

    def __init__(self, unet: nn.Module, schedule: Schedule, times: Tensor) -> None:
        super().__init__(unet, schedule)
        self.register_buffer("times", times.to(torch.float64), persistent=False)  # (T,) 1000 t per step

    def forward(self, z_t: Tensor, time: Tensor) -> Tensor:
        i = (self.times[None, :] - time.to(torch.float64)[:, None]).abs().argmin(dim=1)  # the step of each time
        t = self.times[i] / 1000.0
        z = z_t / _bc(((1.0 - t) ** 2 + t**2).sqrt(), z_t)  # the ε-network's VP latent
        eps, z0 = self._eps_z0(z, i)
        return eps - z0


def flow_times(schedule: Schedule) -> Tensor:
    """The rectified-flow times (T,) float64 with the SNRs of a VP ``schedule``: ``t = b / (a + b)``."""
    a, b = schedule.alphas_cumprod.sqrt(), (1.0 - schedule.alphas_cumprod).sqrt()
    return b / (a + b)


def toy_ldm_as(path: str | Path, prediction: str) -> LatentDiffusion:
    """The toy LDM at ``path`` seen as a ``v_prediction`` or ``flow`` model (``conf/model/toy_ldm_as_*.yaml``)."""
    base = LatentDiffusion.from_pretrained(path)
    if prediction == "v_prediction":
        view, schedule = AsVPrediction(base.unet, base.schedule), base.schedule
    elif prediction == "flow":
        t = flow_times(base.schedule)
        schedule = Schedule.flow_times(t)  # the paper's grid rule (spacing "ldm"): the same grid steps as toy_ldm
        view = AsFlow(base.unet, base.schedule, schedule.times)
    else:
        raise ValueError(f"toy_ldm_as: prediction must be 'v_prediction' or 'flow', got {prediction!r}")
    model = LatentDiffusion(base.autoencoder, view, base.scale_factor, schedule, prediction_type=prediction)
    return model.requires_grad_(False).eval()

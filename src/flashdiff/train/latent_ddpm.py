"""Training of the latent priors on ``z0 = E0(x)``: the DDPM ``eps_theta`` on the 1000-step LDM schedule (ε-prediction)
and a rectified-flow velocity ``u_theta(z_t, 1000 t)`` (``z_t = (1 - t) z0 + t ε``, target ``ε - z0``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from torch import Tensor, nn

from flashdiff.diffusion.model import LatentDiffusion


class LatentDDPMObjective(nn.Module):
    """``model(batch)`` -> ``||eps - eps_theta(a_i z0 + b_i eps, i)||^2`` with i uniform over the schedule."""

    def __init__(self, unet: UNet2DModel, ldm: LatentDiffusion) -> None:
        super().__init__()
        self.unet = unet
        self.ldm = ldm.requires_grad_(False).eval()  # frozen E0 and schedule

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        with torch.no_grad():
            z0 = self.ldm.encode(batch["x"])  # (B, C, h, w)
        i = torch.randint(0, self.ldm.schedule.num_steps, (z0.shape[0],), device=z0.device)
        noise = torch.randn_like(z0)
        z_i = self.ldm.schedule.q_sample(z0, i, noise)
        loss = F.mse_loss(self.unet(z_i, i).sample, noise)
        return {"loss": loss}


class LatentFlowObjective(LatentDDPMObjective):
    """``model(batch)`` -> ``||(ε - z0) - u_theta((1 - t) z0 + t ε, 1000 t)||^2`` with t ~ U(0, 1) (rectified flow,
    Liu et al. 2023; the network's time input is diffusers' flow convention ``1000 t``)."""

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        with torch.no_grad():
            z0 = self.ldm.encode(batch["x"])  # (B, C, h, w)
        t = torch.rand(z0.shape[0], device=z0.device)
        noise = torch.randn_like(z0)
        tb = t.view(-1, 1, 1, 1)
        z_t = (1.0 - tb) * z0 + tb * noise
        loss = F.mse_loss(self.unet(z_t, 1000.0 * t).sample, noise - z0)
        return {"loss": loss}

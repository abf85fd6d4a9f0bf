"""Training of the latent DDPM ``eps_theta`` on ``z0 = E0(x)`` with the 1000-step LDM schedule (ε-prediction)."""

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

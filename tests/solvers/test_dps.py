"""Pixel-space DPS: the pixel model wrapper, its training and loading, and the solver's contract."""

import json

import pytest
import torch

from flashdiff.data import ToyImages
from flashdiff.data.seeding import generators
from flashdiff.diffusion import PixelDiffusion, pixel_scheduler
from flashdiff.operators import GaussianBlur
from flashdiff.solvers.dps import dps
from flashdiff.solvers.latent_dps import latent_dps
from flashdiff.train.commands import train_latent_ddpm
from flashdiff.train.loop import LoopSettings, TrainingJob
from tests.conftest import TINY_UNET, AnalyticLDM, run


def tiny_pixel_model(size: int = 16) -> PixelDiffusion:
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=3, out_channels=3, **TINY_UNET)
    return PixelDiffusion(unet, pixel_scheduler(), size).requires_grad_(False).eval()


def test_pixel_model_is_the_identity_autoencoder_on_the_pixel_schedule():
    model = tiny_pixel_model()
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(model.decode(model.encode(x)), x)
    assert model.latent_shape == (3, 16, 16) and model.scale_factor == 1.0
    assert model.schedule.num_steps == 1000
    torch.testing.assert_close(model.schedule.betas[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64))


def test_dps_is_latent_dps_on_pixels_with_per_sample_nfe_and_costs():
    model = tiny_pixel_model()
    op = GaussianBlur(kernel_size=5)
    x = torch.rand(3, 3, 16, 16)
    seeds = torch.tensor([1, 2, 3])
    params = op.draw(seeds, tuple(x.shape))
    y = op.measure(x, params, seeds)
    z = torch.randn(3, 3, 16, 16)
    start = torch.tensor([0, 2, 5])
    out = run(dps(eta=0.5), model, op, y, params, z, start, generators([1, 2, 3]))
    ref = run(latent_dps(eta=0.5), model, op, y, params, z, start, generators([1, 2, 3]))
    torch.testing.assert_close(out.latents, ref.latents)
    assert out.nfe.tolist() == [0, 2, 5] and out.score_forwards.tolist() == [0, 2, 5]
    assert out.backward_passes.tolist() == [0, 2, 5] and torch.equal(out.latents[0], z[0])
    alone = run(dps(eta=0.5),
                model, op, y[2:], {k: v[2:] for k, v in params.items()}, z[2:], start[2:], generators([3]))
    torch.testing.assert_close(alone.latents[0], out.latents[2])  # batch invariance


def test_dps_refuses_a_latent_model():
    op = GaussianBlur(kernel_size=5)
    with pytest.raises(ValueError, match="model=toy_pixel_ddpm"):
        run(dps(),
            AnalyticLDM(), op, torch.rand(1, 3, 8, 8), {}, torch.randn(1, 3, 8, 8), torch.tensor([1]), generators([0]))


def test_pixel_ddpm_trains_saves_and_loads(tmp_path):
    model = PixelDiffusion(None, pixel_scheduler(), sample_size=32)
    settings = LoopSettings(steps=2, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=2)
    job = TrainingJob(ToyImages("train", length=16), ToyImages("val"), tmp_path / "m", tmp_path / "w")
    train_latent_ddpm(job, model, arch=TINY_UNET, loop=settings)
    assert json.loads((tmp_path / "m/scheduler/scheduler_config.json").read_text())["beta_end"] == 0.02
    loaded = PixelDiffusion.from_pretrained(tmp_path / "m")
    assert loaded.latent_shape == (3, 32, 32)
    with torch.no_grad():
        assert loaded.eps(torch.randn(2, 3, 32, 32), torch.tensor([3, 900])).shape == (2, 3, 32, 32)

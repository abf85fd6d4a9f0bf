"""A few real training steps of each toy model, checkpoint resume, and the save/load round trip."""

import json

import pytest
import torch

from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion
from flashdiff.train.autoencoder import AutoencoderObjective
from flashdiff.train.commands import build_autoencoder, train_autoencoder, train_latent_ddpm
from flashdiff.train.loop import LoopSettings, TrainingJob, fit
from tests.conftest import TINY_AE, TINY_UNET


def test_autoencoder_then_latent_ddpm_train_save_and_load(tmp_path):
    from diffusers import UNet2DModel

    from flashdiff.train.autoencoder import reconstruction_psnr

    train_set, val_set = ToyImages("train", length=64), ToyImages("val")
    torch.manual_seed(0)
    untrained = LatentDiffusion(build_autoencoder(TINY_AE, 32), None, 1.0)
    torch.manual_seed(0)  # train_autoencoder starts from the same weights
    settings = LoopSettings(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, checkpoint_every=2)
    job = TrainingJob(train_set, val_set, tmp_path / "m", tmp_path / "w_ae")
    result = train_autoencoder(job, arch=TINY_AE, kl_weight=1e-6, loop=settings)
    assert json.loads((tmp_path / "m/vae/config.json").read_text())["scaling_factor"] == result["scale_factor"]
    ldm = LatentDiffusion.from_pretrained(tmp_path / "m", unet_subfolder=None)
    saved_psnr = reconstruction_psnr(ldm, val_set).mean().item()
    assert saved_psnr == pytest.approx(result["val_psnr"], abs=1e-4)  # the record is the saved model's
    assert saved_psnr > reconstruction_psnr(untrained, val_set).mean().item() + 0.5  # 3 steps already help (~1.3 dB)
    with torch.no_grad():  # the scale factor brings the training latents to unit variance
        assert ldm.encode(torch.stack([train_set[k]["x"] for k in range(64)])).std().item() == pytest.approx(1.0)
    settings = LoopSettings(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, ema_decay=0.9, checkpoint_every=2)
    c, h, _ = ldm.latent_shape
    torch.manual_seed(1)
    init = UNet2DModel(sample_size=h, in_channels=c, out_channels=c, **TINY_UNET).state_dict()
    torch.manual_seed(1)  # train_latent_ddpm starts from these weights
    train_latent_ddpm(TrainingJob(train_set, val_set, tmp_path / "m", tmp_path / "w_ddpm"), ldm, arch=TINY_UNET,
                      loop=settings)
    full = LatentDiffusion.from_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m/scheduler/scheduler_config.json").read_text())["beta_end"] == 0.0195
    assert json.loads((tmp_path / "m/unet/training.json").read_text())["steps"] == 3
    trained = full.unet.state_dict()
    assert trained.keys() == init.keys() and any(not torch.equal(trained[k], v) for k, v in init.items())
    z = torch.randn(2, *full.latent_shape)
    with torch.no_grad():
        assert full.eps(z, torch.tensor([5, 500])).shape == z.shape


def test_training_lowers_the_loss_and_resumes_from_checkpoint(tmp_path):
    data = ToyImages("train", length=32)
    torch.manual_seed(0)
    ae = build_autoencoder(TINY_AE, 32)
    objective = AutoencoderObjective(ae)
    batch = {"x": torch.stack([data[k]["x"] for k in range(16)])}
    with torch.no_grad():
        before = objective(batch)["mse"].item()
    fit(objective, data, LoopSettings(steps=30, batch_size=16, lr=3e-3, warmup_steps=2, checkpoint_every=10),
        tmp_path)
    with torch.no_grad():
        after = objective(batch)["mse"].item()
    assert after < 0.7 * before
    assert json.loads((tmp_path / "checkpoint/state.json").read_text())["step"] == 30
    # a longer run with resume continues at step 30 from the saved weights, not from scratch
    saved = {k: v.clone() for k, v in ae.state_dict().items()}
    fresh = AutoencoderObjective(build_autoencoder(TINY_AE, 32))
    fit(fresh, data, LoopSettings(steps=30, batch_size=16, resume=True), tmp_path)
    for k, v in fresh.autoencoder.state_dict().items():
        torch.testing.assert_close(v, saved[k])


def test_resume_from_a_checkpoint_of_another_model_names_the_folder_and_the_fix(tmp_path):
    data = ToyImages("train", length=16)
    settings = LoopSettings(steps=2, batch_size=8, warmup_steps=1, checkpoint_every=1)
    fit(AutoencoderObjective(build_autoencoder(TINY_AE, 32)), data, settings, tmp_path)
    other = torch.nn.Linear(3, 3)  # a rerun into the same directory with another architecture
    other.forward = lambda batch: {"loss": other.weight.sum()}
    with pytest.raises(ValueError, match=r"checkpoint of another model.*hydra\.run\.dir.*train\.loop\.resume=false"):
        fit(other, data, LoopSettings(steps=4, batch_size=8, resume=True), tmp_path)
    wider = AutoencoderObjective(build_autoencoder({**TINY_AE, "block_out_channels": [16, 16]}, 32))  # same names
    with pytest.raises(ValueError, match="checkpoint of another model"):
        fit(wider, data, LoopSettings(steps=4, batch_size=8, resume=True), tmp_path)


def test_latent_flow_trains_a_velocity_prior_that_loads_as_a_flow_model(tmp_path, tiny_ldm_dir):
    from flashdiff.train.latent_ddpm import LatentFlowObjective

    train_set, val_set = ToyImages("train", length=16), ToyImages("val")
    ldm = LatentDiffusion.from_pretrained(tiny_ldm_dir, unet_subfolder=None)
    settings = LoopSettings(steps=2, batch_size=4, warmup_steps=1, checkpoint_every=2)
    train_latent_ddpm(TrainingJob(train_set, val_set, tmp_path / "f", tmp_path / "w"), ldm, arch=TINY_UNET,
                      loop=settings, objective="flow", flow_shift=3.0)
    flow = LatentDiffusion.from_pretrained(tmp_path / "f", autoencoder_path=tiny_ldm_dir,
                                           scheduler_subfolder="scheduler")
    assert flow.prediction_type == "flow" and flow.schedule.path == "flow"
    assert flow.schedule.times[0] == pytest.approx(1000 * 3 * 1e-3 / (1 + 2e-3))  # the saved shift is read back
    # the objective's target is the velocity ε - z0 of z_t = (1 - t) z0 + t ε at the time the network sees, 1000 t
    seen = {}

    class Zero(torch.nn.Module):  # records what the network is given and predicts 0
        def forward(self, z_t, time):
            seen.update(z_t=z_t, time=time)
            return type("Out", (), {"sample": z_t * 0})()

    objective = LatentFlowObjective(Zero(), ldm)
    torch.manual_seed(0)
    batch = {"x": torch.stack([train_set[k]["x"] for k in range(3)])}
    loss = objective(batch)["loss"]
    torch.manual_seed(0)
    t = torch.rand(3)
    assert torch.allclose(seen["time"], 1000 * t)
    z0 = ldm.encode(batch["x"])
    noise = torch.randn_like(z0)
    assert torch.allclose(seen["z_t"], (1 - t.view(-1, 1, 1, 1)) * z0 + t.view(-1, 1, 1, 1) * noise, atol=1e-6)
    assert loss.item() == pytest.approx(((noise - z0) ** 2).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="train.objective"):
        train_latent_ddpm(TrainingJob(train_set, val_set, tmp_path / "g", tmp_path / "w2"), ldm, arch=TINY_UNET,
                          loop=settings, objective="score")

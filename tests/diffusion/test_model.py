import json
import time

import pytest
import torch
from diffusers import VQModel

from flashdiff.diffusion import LatentDiffusion, ModelNotFoundError
from tests.conftest import build_tiny_ldm


def test_save_load_round_trip_keeps_outputs(tmp_path):
    model = build_tiny_ldm().eval()
    model.save_pretrained(tmp_path)
    loaded = LatentDiffusion.from_pretrained(tmp_path)
    assert loaded.scale_factor == pytest.approx(1.5)
    assert json.loads((tmp_path / "vae" / "config.json").read_text())["scaling_factor"] == pytest.approx(1.5)
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = model.encode(x)
        assert z.shape == (2, *model.latent_shape) == (2, 4, 16, 16)
        torch.testing.assert_close(loaded.encode(x), z)
        torch.testing.assert_close(loaded.decode(z), model.decode(z))
        i = torch.tensor([0, 999])
        torch.testing.assert_close(loaded.eps(z, i), model.eps(z, i))


def test_scale_factor_is_applied_explicitly(tmp_path):
    model = build_tiny_ldm().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        raw = model.autoencoder.encode(2 * x - 1).latent_dist.mode()
        torch.testing.assert_close(model.encode(x), 1.5 * raw)
        torch.testing.assert_close(model.decode(model.encode(x)), (model.autoencoder.decode(raw).sample + 1) / 2)


def test_missing_scaling_factor_is_refused_not_defaulted(tmp_path):
    vq = VQModel(block_out_channels=(8,), norm_num_groups=4, latent_channels=3, num_vq_embeddings=16,
                 sample_size=16)
    vq.save_pretrained(tmp_path / "vqvae")
    cfg = json.loads((tmp_path / "vqvae" / "config.json").read_text())
    cfg.pop("scaling_factor", None)
    (tmp_path / "vqvae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="set model.scale_factor explicitly"):
        LatentDiffusion.from_pretrained(tmp_path, autoencoder_subfolder="vqvae", unet_subfolder=None)
    model = LatentDiffusion.from_pretrained(tmp_path, autoencoder_subfolder="vqvae", unet_subfolder=None,
                                            scale_factor=1.0)
    assert isinstance(model.autoencoder, VQModel) and model.scale_factor == 1.0
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), vq.encode(2 * x - 1).latents)
    with pytest.raises(RuntimeError, match="no score model"):
        model.eps(torch.zeros(1, 3, 16, 16), torch.zeros(1, dtype=torch.long))


def test_hub_id_offline_fails_at_once_naming_id_and_key(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"model.path=CompVis/ldm-celebahq-256.*huggingface-cli download"):
        LatentDiffusion.from_pretrained("CompVis/ldm-celebahq-256", autoencoder_subfolder="vqvae", scale_factor=1.0)
    assert time.perf_counter() - started < 10


def test_missing_local_folder_names_the_key(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model.path=.*no such folder"):
        LatentDiffusion.from_pretrained(tmp_path / "nope")
    (tmp_path / "vae").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"lacks \['vae', 'unet'\]"):
        LatentDiffusion.from_pretrained(tmp_path)

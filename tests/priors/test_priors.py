"""The text-to-image families (model=sd15 ... flux_schnell) on tiny random-weight snapshots of the real classes:
each loads with its own schedule, prediction type, autoencoder factors and fixed prompt conditioning (cached, the text
encoders dropped), reconstructs with Flash and from pure noise (every solver under `slow`), and a missing snapshot
names the hub id to download."""

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate

import flashdiff
import flashdiff.paths  # noqa: F401  (registers the ${flashdiff_root:} resolver)
from flashdiff.data import ToyImages
from flashdiff.diffusion import priors
from flashdiff.diffusion.conditioning import cache_file
from flashdiff.diffusion.priors import image_ids, load_prior, pack, unpack
from flashdiff.errors import ConfigError
from flashdiff.operators import GaussianBlur
from flashdiff.severity import Flash, SeverityEncoder
from flashdiff.severity.start import Baseline
from flashdiff.solvers.ddim import ddim
from flashdiff.solvers.ddpm import ddpm
from tests.conftest import ROOT
from tests.priors.snapshots import FAMILIES, IMAGE_SIZE, VAE_FACTORS
from tests.solvers.test_contract import SOLVERS

DENOISER = {"sd3_medium": "transformer", "flux_dev": "transformer", "flux_schnell": "transformer"}
PREDICTION = {"sd15": "epsilon", "sd21_base": "epsilon", "sd21": "v_prediction", "sdxl_base": "epsilon",
              "sd3_medium": "flow", "flux_dev": "flow", "flux_schnell": "flow"}
HUB = {"sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd21_base": "stabilityai/stable-diffusion-2-1-base",
       "sd21": "stabilityai/stable-diffusion-2-1", "sdxl_base": "stabilityai/stable-diffusion-xl-base-1.0",
       "sd3_medium": "stabilityai/stable-diffusion-3-medium-diffusers", "flux_dev": "black-forest-labs/FLUX.1-dev",
       "flux_schnell": "black-forest-labs/FLUX.1-schnell"}


def load(snapshot, family, **kwargs):
    return load_prior(snapshot(family), unet_subfolder=DENOISER.get(family, "unet"), image_size=IMAGE_SIZE, **kwargs)


def test_flux_packing_and_positions_are_diffusers():
    from diffusers import FluxPipeline

    z = torch.randn(2, 16, 6, 4)
    packed = pack(z)
    assert torch.equal(packed, FluxPipeline._pack_latents(z, 2, 16, 6, 4)) and torch.equal(unpack(packed, 16, 6, 4), z)
    assert torch.equal(image_ids(3, 2, torch.device("cpu"), torch.float32),
                       FluxPipeline._prepare_latent_image_ids(1, 3, 2, "cpu", torch.float32))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_loads_with_its_schedule_factors_and_cached_conditioning(snapshot, family, tmp_path, monkeypatch):
    model = load(snapshot, family, cache_dir=tmp_path, prompt="a cat")
    scale, shift = VAE_FACTORS[family]
    assert model.prediction_type == PREDICTION[family] and model.scale_factor == scale
    assert model.shift_factor == (shift or 0.0) and model.image_size == IMAGE_SIZE
    assert model.latent_shape == (16 if family in DENOISER else 4, 4, 4)
    assert not any(type(m).__module__.startswith("transformers") for m in model.modules())  # text encoders dropped
    s = model.schedule
    if family in DENOISER:  # rectified flow: SD3 shift 3, schnell 1, dev exp(mu) at 2x2 tokens
        mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * (4 - 256)
        shift = {"sd3_medium": 3.0, "flux_dev": math.exp(mu), "flux_schnell": 1.0}[family]
        sigma = torch.arange(1, 1001, dtype=torch.float64) / 1000
        t = (shift * sigma / (1 + (shift - 1) * sigma)).clamp(max=1 - 1e-3)
        assert s.path == "flow" and torch.allclose(s.times, 1000 * t)
    else:  # scaled-linear betas 0.00085 -> 0.012, diffusers' leading grid with offset 1
        assert s.path == "vp" and s.spacing == "leading" and s.steps_offset == 1
        assert torch.isclose(s.betas[-1], torch.tensor(0.012, dtype=torch.float64))
        assert s.grid(10).tolist() == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    family_name = priors.family_of({"_class_name": type(model.unet.net).__name__, **model.unet.net.config})
    files = list((tmp_path / "conditioning").glob("*.safetensors"))
    assert [f.name for f in files] == [cache_file(tmp_path, snapshot(family), family_name, "a cat", False,
                                                  {"sd3": 256, "flux": 512}.get(family_name), None).name]
    z = torch.randn(2, *model.latent_shape)
    eps = model.eps(z, torch.tensor([999, 3]))
    monkeypatch.setattr("flashdiff.diffusion.conditioning.encode_prompt", lambda *a, **k: 1 / 0)
    again = load(snapshot, family, cache_dir=tmp_path, prompt="a cat")  # from the cache: no text encoder runs
    assert torch.equal(again.eps(z, torch.tensor([999, 3])), eps) and torch.isfinite(eps).all()


@pytest.mark.parametrize("family", ["sd15", "sdxl_base", "sd3_medium", "flux_dev"])
def test_classifier_free_guidance_is_one_batch_of_two_rows_per_sample(snapshot, family):
    w = load(snapshot, family, cfg_scale=3.0).unet
    rows = []
    w.net.register_forward_pre_hook(lambda m, args, kw: rows.append((args or [kw["hidden_states"]])[0].shape[0]),
                                    with_kwargs=True)
    z = torch.randn(2, 16 if family in DENOISER else 4, 4, 4)
    time = torch.tensor([500.0, 20.0]) if family in DENOISER else torch.tensor([500, 20])
    extra = {"guidance": w.guidance} if family == "flux_dev" else {}
    with torch.no_grad():
        guided = w(z, time)
        c = type(w)(w.net, {k: getattr(w, f"cond_{k}") for k in w.keys}, **extra)(z, time)
        u = type(w)(w.net, {k: getattr(w, f"uncond_{k}") for k in w.keys}, **extra)(z, time)
    assert rows == [4, 2, 2] and torch.allclose(guided, u + 3.0 * (c - u), atol=1e-5)


def test_sdxl_time_ids_follow_the_image_size(prior):
    assert prior("sdxl_base").unet.cond_time_ids.tolist() == [[32, 32, 0, 0, 32, 32]]


def _reconstruct(model, solver, adapter):
    data = ToyImages(split="test", size=IMAGE_SIZE, downscale=2)
    start = Flash(SeverityEncoder.from_latent_diffusion(model).eval()) if adapter == "flash" else Baseline()
    out = list(flashdiff.reconstruct([data[k] for k in (0, 57)], GaussianBlur(kernel_size=9), model, solver, start))
    assert len(out) == 2 and all(r.x_hat.shape == (3, IMAGE_SIZE, IMAGE_SIZE) for r in out)
    assert all(torch.isfinite(r.x_hat).all() for r in out)
    return out


@pytest.mark.parametrize("adapter", ["flash", "none"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_reconstructs_with_and_without_flash(prior, family, adapter):
    out = _reconstruct(prior(family), ddim(num_steps=3), adapter)
    assert all(r.nfe == 3 if adapter == "none" else 0 <= r.nfe <= 3 for r in out)


SHORT = {"num_steps": 4, "every": 2, "max_iters": 2, "ode_steps": 2, "langevin_steps": 2}


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["flash", "none"])
@pytest.mark.parametrize("name", [*SOLVERS, "ddpm"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_solver_runs_on_every_family(prior, family, name, adapter):
    """Every latent solver of conf/solver on its DDIM grid (ancestral DDPM, every step, on the VP families only)."""
    if name == "ddpm":
        if family in DENOISER:
            with pytest.raises(ConfigError, match="ancestral DDPM"):
                ddpm().check(prior(family), GaussianBlur(kernel_size=9))
            return
        solver = ddpm()
    else:
        factory, kwargs = SOLVERS[name]
        solver = factory(**(kwargs | {k: v for k, v in SHORT.items() if k in kwargs}))
    _reconstruct(prior(family), solver, adapter)


def test_the_severity_encoder_starts_as_the_shifted_scaled_encoder(prior):
    model = prior("sd3_medium")
    x = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    encoder = SeverityEncoder.from_latent_diffusion(model)
    assert encoder.shift_factor == pytest.approx(0.0609)
    torch.testing.assert_close(encoder(x)[0], model.encode(x), rtol=1e-5, atol=1e-5)
    encoder.check_matches(model)


def test_the_autoencoder_alone_for_the_trainers(snapshot):
    model = load_prior(snapshot("flux_schnell"), unet_subfolder=None, image_size=64)
    assert model.unet is None and model.latent_shape == (16, 8, 8) and model.shift_factor == pytest.approx(0.1159)


def test_an_image_size_off_the_token_grid_is_refused(snapshot):
    with pytest.raises(ValueError, match="model.image_size=40 must be a multiple of 16"):
        load_prior(snapshot("sd3_medium"), unet_subfolder="transformer", image_size=40)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_missing_snapshot_names_the_key_and_the_hub_id(family, tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", [f"model={family}", f"paths.models_dir={tmp_path}"])
    assert cfg.model.hub_id == HUB[family]
    with pytest.raises(InstantiationException) as err:
        instantiate(cfg.model)
    message = str(err.value)
    assert f"model.path={tmp_path / family}" in message
    assert f"hf download {HUB[family]} --local-dir {tmp_path / family}" in message


@pytest.mark.parametrize("family", ["sd21", "sdxl_base", "flux_dev"])
def test_a_preset_loads_a_snapshot_with_its_keys(snapshot, family, tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", [f"model={family}", f"model.path={snapshot(family)}", f"model.image_size={IMAGE_SIZE}",
                                 "model.prompt=a dog", "model.cfg_scale=2.0"])
    model = instantiate(cfg.model, cache_dir=str(tmp_path))
    assert model.unet.cfg_scale == 2.0 and model.image_size == IMAGE_SIZE
    assert model.prediction_type == PREDICTION[family]
    assert getattr(model.unet, "guidance", None) == (3.5 if family == "flux_dev" else None)
    assert len(list((tmp_path / "conditioning").glob("*.safetensors"))) == 1

"""The real-size families on the meta device (shapes only, no memory): parameter counts of the published denoisers
and autoencoders, the conditioning path at the native latent size (one ε̂ and one decode), and the latent shapes;
one real-size SD 1.5 step with random weights on the CPU (slow)."""

import pytest
import torch

from flashdiff.diffusion.architectures import FAMILIES, architecture, random_prior

PARAMETERS = {  # (denoiser, autoencoder) of the diffusers snapshots' configs
    "sd15": (859_520_964, 83_653_863),
    "sd21_base": (865_910_724, 83_653_863),
    "sd21": (865_910_724, 83_653_863),
    "sdxl_base": (2_567_463_684, 83_653_863),
    "sd3_medium": (2_028_328_000, 83_819_683),
    "flux_dev": (11_901_408_320, 83_819_683),
    "flux_schnell": (11_891_178_560, 83_819_683),  # no guidance embedding
}
NATIVE = {"sd15": (4, 64, 64), "sd21_base": (4, 64, 64), "sd21": (4, 96, 96), "sdxl_base": (4, 128, 128),
          "sd3_medium": (16, 128, 128), "flux_dev": (16, 128, 128), "flux_schnell": (16, 128, 128)}
PATH = {"sd15": ("vp", "epsilon"), "sd21_base": ("vp", "epsilon"), "sd21": ("vp", "v_prediction"),
        "sdxl_base": ("vp", "epsilon"), "sd3_medium": ("flow", "flow"), "flux_dev": ("flow", "flow"),
        "flux_schnell": ("flow", "flow")}


def test_every_family_has_an_architecture_and_a_preset():
    from tests.conftest import ROOT

    assert set(FAMILIES) == set(PARAMETERS) and all((ROOT / "conf/model" / f"{f}.yaml").exists() for f in FAMILIES)


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in ("sd21_base", "flux_schnell") else f
                                    for f in FAMILIES])  # those two: another's architecture, one config changed
def test_real_size_family_on_the_meta_device(family):
    model = random_prior(family, device="meta")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(model.unet.net), count(model.autoencoder)) == PARAMETERS[family]
    assert model.latent_shape == NATIVE[family] and (model.schedule.path, model.prediction_type) == PATH[family]
    z = torch.randn(2, *model.latent_shape, device="meta")
    eps = model.eps(z, torch.tensor([999, 500], device="meta"))  # the fixed conditioning, expanded to the batch
    assert eps.shape == z.shape and eps.device.type == "meta"
    assert model.decode(z[:1]).shape == (1, 3, 8 * NATIVE[family][1], 8 * NATIVE[family][2])
    shapes = {k: tuple(v.shape) for k, v in model.unet.named_buffers() if k.startswith("cond_")}
    assert shapes == {f"cond_{k}": (1, *v) for k, v in architecture(family)["conditioning"].items()} | (
        {"cond_time_ids": (1, 6)} if family == "sdxl_base" else {})


def test_classifier_free_guidance_on_the_meta_device_runs_two_rows_per_sample():
    model = random_prior("sd15", device="meta", cfg_scale=7.5)
    rows = []
    model.unet.net.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    model.eps(torch.randn(3, *model.latent_shape, device="meta"), torch.tensor([1, 2, 3], device="meta"))
    assert rows == [6]


@pytest.mark.slow
def test_one_real_size_sd15_step_on_the_cpu():
    """A 64x64 image (8x8 latents) through the real-size SD 1.5 networks with random weights: E0, one ε̂, D0."""
    torch.manual_seed(0)
    model = random_prior("sd15", image_size=64)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        z = model.encode(x)
        eps = model.eps(z, torch.tensor([500]))
        out = model.decode(z - 0.1 * eps)
    assert z.shape == (1, 4, 8, 8) == eps.shape and out.shape == x.shape and torch.isfinite(out).all()

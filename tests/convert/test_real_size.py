"""The paper's real architectures: the converter maps them completely, and a 256² image runs end to end on CPU."""

import pytest
import torch
from diffusers import UNet2DModel, VQModel

from flashdiff.convert import architecture
from flashdiff.convert.architectures import random_latent_diffusion
from flashdiff.convert.unet import unet_config, unet_state_dict
from flashdiff.convert.vq import vq_config, vq_state_dict
from tests.convert.original import SevEncoder, UNetModel, VQFirstStage

# model.params of latent-diffusion's celebahq-ldm-vq-4.yaml (lsun_bedrooms-ldm-vq-4.yaml has the same networks)
LDM_VQ4_UNET = {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                "params": {"image_size": 64, "in_channels": 3, "out_channels": 3, "model_channels": 224,
                           "attention_resolutions": [8, 4, 2], "num_res_blocks": 2, "channel_mult": [1, 2, 3, 4],
                           "num_head_channels": 32}}
LDM_VQ4_FIRST_STAGE = {"target": "ldm.models.autoencoder.VQModelInterface",
                       "params": {"embed_dim": 3, "n_embed": 8192,
                                  "ddconfig": {"double_z": False, "z_channels": 3, "resolution": 256,
                                               "in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": [1, 2, 4],
                                               "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0},
                                  "lossconfig": {"target": "torch.nn.Identity"}}}


def _shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


def test_the_ldm_configs_convert_to_the_hub_architectures():
    for converted, name in [(unet_config(LDM_VQ4_UNET), "ldm_unet_celebahq256"),
                            (vq_config(LDM_VQ4_FIRST_STAGE), "vq_f4")]:
        hub = architecture(name)
        assert {k: converted[k] for k in hub} == hub


def test_real_size_checkpoint_layout_maps_completely():
    """Every original weight of the real UNet and VQ-f4 lands on a diffusers weight of the same shape (meta tensors)."""
    with torch.device("meta"):
        unet, first_stage = UNetModel(**LDM_VQ4_UNET["params"]), VQFirstStage(
            LDM_VQ4_FIRST_STAGE["params"]["ddconfig"], 3, 8192)
        sev = SevEncoder(LDM_VQ4_FIRST_STAGE["params"]["ddconfig"], 3)
        target_unet = UNet2DModel.from_config(architecture("ldm_unet_celebahq256"))
        target_vq = VQModel.from_config(architecture("vq_f4"))
    assert sum(p.numel() for p in target_unet.parameters()) == sum(p.numel() for p in unet.parameters()) > 270e6
    mapped = unet_state_dict(unet.state_dict(), LDM_VQ4_UNET["params"])
    assert _shapes(mapped) == _shapes(target_unet.state_dict())
    assert _shapes(vq_state_dict(first_stage.state_dict(), architecture("vq_f4"))) == _shapes(target_vq.state_dict())
    backbone = {k: v for k, v in sev.state_dict().items() if not k.startswith("std_conv")}
    expected = {k: v for k, v in _shapes(target_vq.state_dict()).items() if k.startswith(("encoder.", "quant_conv."))}
    assert _shapes(vq_state_dict(backbone, architecture("vq_f4"), encoder_only=True)) == expected


@pytest.mark.slow
def test_real_size_flash_latent_dps_and_resample_run_two_steps_on_cpu():
    """One 256² image, random weights of the real architectures: Flash start, 2 reverse steps, decode (minutes)."""
    from flashdiff.data.seeding import generators
    from flashdiff.diffusion.steps import sampling_grid
    from flashdiff.engine import sample
    from flashdiff.operators import GaussianBlur
    from flashdiff.severity import Flash, SeverityEncoder
    from flashdiff.solvers.latent_dps import latent_dps
    from flashdiff.solvers.resample import resample

    model = random_latent_diffusion()
    assert model.latent_shape == (3, 64, 64)
    encoder = SeverityEncoder.from_latent_diffusion(model).requires_grad_(False).eval()
    op = GaussianBlur(kernel_size=61, max_std=3.0)
    seeds = torch.tensor([7])
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    params = op.draw(seeds, tuple(x.shape))
    y = op.measure(x, params, seeds)
    runs = [(latent_dps, {"num_steps": 1000, "eta": 1.0}), (resample, {"num_steps": 500, "delta": 1.0, "max_iters": 1})]
    with torch.no_grad():
        for solver, kwargs in runs:
            n = kwargs["num_steps"]
            # a σ head predicting the noise level of the grid's second-cleanest step: σ̂² = b² with W = 0
            grid = sampling_grid(1000, n)
            level = 1.0 / float(model.schedule.snr()[grid[n - 2]])
            encoder.head.weight.zero_()
            encoder.head.bias.fill_(level**0.5 / encoder.head.lr_mult)
            begin = Flash(encoder, c=1.0)(model, y, grid, generators(seeds.tolist()))
            assert begin.nfe.tolist() == [2] and begin.latents.shape == (1, 3, 64, 64)
            out = sample(model, solver(**kwargs), begin.latents, begin.nfe, generators(seeds.tolist(), 1), op=op, y=y,
                         params=params)
            assert out.nfe.tolist() == [2] and out.score_forwards.tolist() == [2]
            x_hat = model.decode(out.latents)
            assert x_hat.shape == (1, 3, 256, 256) and torch.isfinite(x_hat).all()
            if solver is resample:
                assert out.inner_iterations.tolist() == [1]  # hard data consistency on the last step
            else:
                assert out.backward_passes.tolist() == [2] and out.decoder_calls.tolist() == [2]

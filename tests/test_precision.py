"""Precision, memory and compile options: bf16 autocast stays close to fp32 and keeps the engine's latents float32;
activation checkpointing changes nothing but memory; torch.compile agrees with eager; runs report peak memory."""

import json

import pytest
import torch

import flashdiff
from flashdiff.operators import GaussianBlur
from flashdiff.precision import autocast, peak_memory, resolve_precision
from flashdiff.severity import Baseline
from flashdiff.solvers.latent_dps import latent_dps
from tests.command import command
from tests.conftest import build_tiny_ldm


def _items(n=3):
    return [{"x": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(k)), "index": k, "id": f"i{k}",
             "seed": k} for k in range(n)]


def _run(model, **settings):
    solver = latent_dps(num_steps=6, delta=1.0, eta=0.5)
    return {r.index: r for r in flashdiff.reconstruct(_items(), GaussianBlur(kernel_size=5), model, solver, Baseline(),
                                                      batch_size=2, **settings)}


def test_precision_names():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="precision=fp8"):
        resolve_precision("fp8", torch.device("cpu"))
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16  # the networks' matmuls
    assert peak_memory(torch.device("cpu"))["peak_memory_gib"] > 0


def test_bf16_is_close_to_fp32_and_keeps_float32_results():
    model = build_tiny_ldm().requires_grad_(False).eval()
    fp32, bf16 = _run(model), _run(model, precision="bf16")
    for k, r in bf16.items():
        assert r.x_hat.dtype == torch.float32 and r.nfe == fp32[k].nfe
        assert (r.x_hat - fp32[k].x_hat).abs().mean() < 0.02  # autocast noise, not a different reconstruction
        assert not torch.equal(r.x_hat, fp32[k].x_hat)  # it did run in bf16


def test_activation_checkpointing_changes_nothing_but_memory():
    model = build_tiny_ldm().requires_grad_(False).eval()
    plain = _run(model)
    model.configure(checkpoint_unet=True, checkpoint_decoder=True)
    assert model.unet.is_gradient_checkpointing and model.checkpoint_decoder
    for k, r in _run(model).items():
        torch.testing.assert_close(r.x_hat, plain[k].x_hat, rtol=1e-5, atol=1e-6)
        assert r.costs == plain[k].costs


def _saved_bytes(model, z):
    """Bytes the decoder keeps for the guidance backward (tensors saved outside checkpointed regions)."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model.decode(z.clone().requires_grad_(True))
    out.square().sum().backward()
    return sum(saved)


@pytest.mark.parametrize("kind", ["AutoencoderKL", "VQModel"])
def test_decoder_checkpointing_is_block_wise_and_saves_activation_memory(kind):
    from diffusers import VQModel

    from flashdiff.diffusion import LatentDiffusion

    torch.manual_seed(0)
    if kind == "VQModel":  # the paper's LDMs: diffusers' VQModel has no enable_gradient_checkpointing of its own
        ae = VQModel(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                     up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=3, num_vq_embeddings=64,
                     norm_num_groups=8, sample_size=32)
        model = LatentDiffusion(ae, None, scale_factor=1.0).requires_grad_(False).eval()
    else:
        model = build_tiny_ldm().requires_grad_(False).eval()
    z = torch.randn(2, *model.latent_shape)
    plain, plain_bytes = model.decode(z), _saved_bytes(model, z)
    model.configure(checkpoint_decoder=True)
    assert model.autoencoder.decoder.gradient_checkpointing  # diffusers' block-wise path, not one whole recompute
    torch.testing.assert_close(model.decode(z), plain)
    assert _saved_bytes(model, z) < 0.5 * plain_bytes  # only the blocks' inputs are kept
    model.configure(checkpoint_decoder=False)  # and off again: the flags follow the settings
    assert not model.autoencoder.decoder.gradient_checkpointing and _saved_bytes(model, z) == plain_bytes


@pytest.mark.slow
def test_compiled_models_agree_with_eager_on_the_toy_models():
    from flashdiff.diffusion import LatentDiffusion
    from flashdiff.paths import ROOT

    model = LatentDiffusion.from_pretrained(ROOT / "models" / "toy_ldm")
    eager = _run(model)
    compiled = _run(LatentDiffusion.from_pretrained(ROOT / "models" / "toy_ldm").configure(compile=True))
    for k, r in compiled.items():
        assert (r.x_hat - eager[k].x_hat).abs().max() < 1e-3


def test_the_command_line_keys_reach_the_model_and_the_summary(tmp_path, tiny_ldm_dir):
    out = tmp_path / "run"
    proc = command(f"model.path={tiny_ldm_dir}", f"hydra.run.dir={out}", "adapter=none", "solver.num_steps=3",
                   "solver.delta=1", "num_images=2", "logger=disabled", "memory.checkpoint_unet=true",
                   "memory.checkpoint_decoder=true", "precision=bf16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["peak_memory_gib"] > 0.1 and summary["peak_memory_kind"] == "peak RSS of the process"
    assert summary["config"]["precision"] == "bf16" and summary["n_scored"] == 2
    engine = [json.loads(line) for line in (out / "engine.rank0.jsonl").read_text().splitlines()]
    assert engine[0]["precision"] == "bf16" and engine[0]["batched_steps"] == 3


class _NetworkOutput(torch.nn.Module):
    """A fixed ``(ẑ, σ̂²)`` (or ε), returned as a network returns it: in the autocast dtype where autocast is on."""

    def __init__(self, *values):
        super().__init__()
        self.values = values

    def forward(self, *_):
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32
        out = tuple(v.to(dtype) for v in self.values)
        return out if len(out) > 1 else out[0]


@pytest.mark.parametrize("name", ["flash", "fixed", "flash_ddim_encoding"])
def test_start_latents_are_computed_in_float32_under_bf16_autocast(name):
    """The same encoder output gives the same start in fp32 and under bf16 autocast (only networks run in bf16)."""
    from flashdiff.data.seeding import generators
    from flashdiff.severity.start import Fixed, Flash, FlashDDIMEncoding
    from flashdiff.solvers.ddim import ddim
    from tests.conftest import AnalyticLDM

    z_hat = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)).bfloat16().float()  # bf16-exact
    encoder = _NetworkOutput(z_hat, torch.tensor([0.02, 0.2, 0.7]).bfloat16().float())
    model = AnalyticLDM()
    model.eps = _NetworkOutput(torch.full((1, 3, 8, 8), 0.375))  # a constant ε, in bf16 under autocast
    adapter = {"flash": Flash(encoder), "fixed": Fixed(encoder, t_start=300),
               "flash_ddim_encoding": FlashDDIMEncoding(encoder)}[name]
    grid = ddim(num_steps=50).grid(model.schedule)
    starts = {}
    for precision in ("fp32", "bf16"):
        with autocast(torch.device("cpu"), precision):
            starts[precision] = adapter(model, torch.zeros(3, 3, 8, 8), grid, generators(range(3)))
    assert starts["bf16"].latents.dtype == torch.float32
    assert starts["bf16"].nfe.tolist() == starts["fp32"].nfe.tolist() and min(starts["fp32"].nfe.tolist()) > 0
    torch.testing.assert_close(starts["bf16"].latents, starts["fp32"].latents, rtol=1.3e-6, atol=1e-6)

"""METHOD.md §3b's check: the toy ε-network seen as a v-predictor and as a rectified-flow velocity predictor (on
the times with the same SNRs) gives the toy LDM's own reconstructions to float rounding, for every DDIM-grid
solver of conf/solver, with Flash and from pure noise; and a flow prior refuses ancestral DDPM steps."""

import pytest
import torch

import flashdiff
from flashdiff.data import ToyImages
from flashdiff.diffusion import LatentDiffusion, Schedule
from flashdiff.diffusion.schedule import FLOW_T_MAX
from flashdiff.errors import ConfigError
from flashdiff.operators import GaussianBlur
from flashdiff.severity import Flash, SeverityEncoder
from flashdiff.severity.start import Baseline
from flashdiff.solvers.ddpm import ddpm
from flashdiff.toy import model_dir
from flashdiff.toy.views import flow_times, toy_ldm_as
from tests.solvers.test_contract import SOLVERS

SHORT = {"num_steps": 5, "every": 2, "max_iters": 3, "ode_steps": 2, "langevin_steps": 2}
DEFAULT = {"ddim", "latent_dps", "resample"}  # the rest of the product runs under `slow`


@pytest.fixture(scope="module")
def models():
    base = LatentDiffusion.from_pretrained(model_dir("toy_ldm"))
    return {"epsilon": base, "v_prediction": toy_ldm_as(model_dir("toy_ldm"), "v_prediction"),
            "flow": toy_ldm_as(model_dir("toy_ldm"), "flow")}


@pytest.fixture(scope="module")
def items():
    data = ToyImages(split="test", size=32, downscale=2)
    return [data[k] for k in (0, 57)]


def test_the_flow_view_has_the_toy_schedule_snrs_and_grid(models):
    base, flow = models["epsilon"].schedule, models["flow"].schedule
    assert flow.path == "flow" and torch.allclose(flow.snr(), base.snr(), rtol=1e-9)
    assert torch.equal(flow.grid(20), base.grid(20))
    t = flow_times(base)
    assert torch.all(t[1:] > t[:-1]) and 0 < t[0] < t[-1] < 1


@pytest.mark.parametrize("adapter", ["flash", "none"])
@pytest.mark.parametrize("name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in SOLVERS if n != "ddpm"])
def test_views_reconstruct_as_the_toy_ldm(models, items, name, adapter):
    factory, kwargs = SOLVERS[name]
    solver = factory(**(kwargs | {k: v for k, v in SHORT.items() if k in kwargs}))
    op = GaussianBlur(kernel_size=19)
    start = (Flash(SeverityEncoder.from_pretrained(model_dir("toy_severity_blur"))) if adapter == "flash"
             else Baseline())
    out = {p: list(flashdiff.reconstruct(items, op, m, solver, start)) for p, m in models.items()}
    for p in ("v_prediction", "flow"):
        for a, b in zip(out["epsilon"], out[p]):
            assert a.nfe == b.nfe
            assert torch.allclose(a.x_hat, b.x_hat, atol=2e-4), (p, (a.x_hat - b.x_hat).abs().max())


def test_a_flow_prior_refuses_ancestral_ddpm(models):
    with pytest.raises(ConfigError, match="ancestral DDPM.*solver.delta"):
        ddpm().check(models["flow"], GaussianBlur(kernel_size=5))
    ddpm().check(models["v_prediction"], GaussianBlur(kernel_size=5))  # v on a VP schedule keeps DDPM


def test_a_flow_schedule_from_diffusers_config():
    from diffusers import FlowMatchEulerDiscreteScheduler

    s = Schedule.from_scheduler(FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0))
    assert s.path == "flow" and s.spacing == "linspace"
    t = s.times / 1000
    sigma = torch.arange(1, 1001, dtype=torch.float64) / 1000
    shifted = 3 * sigma / (1 + 2 * sigma)  # diffusers' shifted training times
    assert torch.allclose(t, shifted.clamp(max=FLOW_T_MAX)) and shifted[-1] == 1
    assert t[-1] < 1 and s.alphas_cumprod[-1] > 0  # the top is clipped: Tweedie stays finite
    grid = s.grid(28)
    assert grid[0] == 999 and grid[-1] == 0 and torch.all(grid[:-1] > grid[1:])


def test_flow_shift_resamples_a_flow_prior_and_is_refused_on_vp():
    flow = LatentDiffusion.from_pretrained(model_dir("toy_flow"), autoencoder_path=model_dir("toy_ldm"),
                                           scheduler_subfolder="scheduler", flow_shift=3.0)
    want = Schedule.flow(1000, shift=3.0)
    assert torch.equal(flow.schedule.times, want.times) and torch.equal(flow.schedule.grid(50), want.grid(50))
    assert flow.schedule.snr()[500] < 1 < Schedule.flow(1000).snr()[498]  # shift 3 moves the grid's middle to noise
    with pytest.raises(ValueError, match="model.flow_shift=3.0 applies to a flow prior"):
        LatentDiffusion.from_pretrained(model_dir("toy_ldm"), flow_shift=3.0)

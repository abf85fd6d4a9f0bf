"""A GPU dry run on the CPU (``flashdiff.dryrun``): the toy models on the ``meta`` device, operator parameters drawn on
the CPU as the reconstruction path draws them, measurements and start latents on the device; every diffusion solver
(ReSample aside: its per-sample stop reads the residual by design) runs engine steps with mixed NFE and fewer slots
than samples, through ``flashdiff.engine.sample`` and ``Engine.run``, with no host sync, no device mix, and only
non-blocking uploads: the index tensor and the noise in a steady-state step."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from flashdiff.data.seeding import generators
from flashdiff.diffusion import LatentDiffusion, PixelDiffusion
from flashdiff.dryrun import DeviceChecks, DeviceError
from flashdiff.engine import Chunk, Engine, sample
from flashdiff.reconstruction import measure_chunk

ROOT = Path(__file__).resolve().parents[1]
DRY = torch.device("meta")
SOLVERS = sorted(p.stem for p in (ROOT / "conf" / "solver").glob("*.yaml") if p.stem not in ("resample", "swinir"))
OPERATORS = ("toy_blur_varying", "toy_inpaint")
NFE = [2, 1, 3]  # mixed starts, more samples (3) than slots (2): admissions mid-run


@pytest.fixture(scope="module")
def models():
    """The bundled toy LDM and pixel DDPM, on the dry-run device (weights gone, shapes kept)."""
    return {"latent": LatentDiffusion.from_pretrained(ROOT / "models" / "toy_ldm").to(DRY),
            "pixel": PixelDiffusion.from_pretrained(ROOT / "models" / "toy_pixel_ddpm").to(DRY)}


SHORT = {"ode_steps": 2, "langevin_steps": 2}
"""Keys that only repeat the same work within a step: fewer repeats check the same ops."""


def _solver(name):
    cfg = OmegaConf.load(ROOT / "conf" / "solver" / f"{name}.yaml")
    return instantiate(cfg, **{k: v for k, v in SHORT.items() if k in cfg})


def _operator(name):
    return instantiate(OmegaConf.load(ROOT / "conf" / "operator" / f"{name}.yaml"))


def _measured(op, n=None):
    """Measurements (n, 3, 32, 32) and parameters on the device, drawn on the CPU as ``reconstruct`` draws them."""
    n = len(NFE) if n is None else n
    items = [{"x": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(k)), "index": k, "id": f"i{k}",
              "seed": k} for k in range(n)]
    m = measure_chunk(items, op, 0, DRY)
    return m.y, m.params


def _assert_on_device(engine):
    """Everything the engine holds per slot lives on the run's device (meta lets CPU tensors indexed by meta pass)."""
    held = [engine.z, *engine.params.values(), *engine.state.values()] + ([] if engine.y is None else [engine.y])
    assert {t.device for t in held} == {DRY}


@pytest.mark.parametrize("op_name", OPERATORS)
@pytest.mark.parametrize("name", SOLVERS)
def test_every_solver_runs_on_the_dry_run_device(models, name, op_name):
    solver, op = _solver(name), _operator(op_name)
    model = models[solver.space]
    solver.check(model, op)
    y, params = _measured(op)
    assert {v.device for v in (y, *params.values())} == {DRY}
    z = torch.zeros(len(NFE), *model.latent_shape, device=DRY)  # start latents on the device
    nfe = torch.tensor(NFE)
    with DeviceChecks(DRY) as checks:
        out = sample(model, solver, z, nfe, generators(range(len(NFE))), op=op, y=y, params=params, batch_size=2)
        engine = Engine(model, op, solver, batch_size=2)
        chunks = [Chunk(z[k:k + 2], nfe[k:k + 2], y[k:k + 2], {n: v[k:k + 2] for n, v in params.items()},
                        generators(range(k, min(k + 2, len(NFE)))), list(range(k, min(k + 2, len(NFE)))))
                  for k in (0, 2)]
        finished = [f for step in engine.run(chunks) for f in step]
    forwards = solver.costs_per_step()["score_forwards"]  # as the solver declares (LatentDAPS: its ODE steps)
    assert out.nfe.tolist() == NFE and out.score_forwards.tolist() == [forwards * n for n in NFE]
    assert out.latents.device == DRY
    assert sorted(f.key for f in finished) == [0, 1, 2]
    assert engine.stats.batched_steps >= max(NFE)
    _assert_on_device(engine)
    assert all(u.non_blocking for u in checks.uploads), checks.uploads


@pytest.mark.parametrize("name", ["latent_dps_ddim", "ddim"])
def test_a_steady_state_step_uploads_its_index_and_its_noise(models, name):
    """Static batching, equal starts: after admission each step sends exactly two tensors, neither blocking."""
    solver, op = _solver(name), _operator("toy_blur_varying")
    y, params = _measured(op, 3)
    z = torch.zeros(3, *models["latent"].latent_shape, device=DRY)
    chunk = Chunk(z, torch.tensor([4, 4, 4]), y, params, generators(range(3)), [0, 1, 2])
    engine = Engine(models["latent"], op, solver, batch_size=3, batching="static")
    steps = engine.run([chunk])
    next(steps)  # admission and the first step
    for _ in range(3):
        with DeviceChecks(DRY) as checks:
            next(steps)
        assert [u.non_blocking for u in checks.uploads] == [True, True]
        assert sorted(u.shape for u in checks.uploads) == [(3, 3), (3, *z.shape[1:])]  # rows, i, i_prev; noise


def test_the_checks_catch_what_meta_lets_through():
    a = torch.zeros(4, device=DRY)
    with DeviceChecks(DRY) as checks, pytest.raises(DeviceError, match="mixes devices"):
        torch.zeros(4)[torch.zeros(2, dtype=torch.int64, device=DRY)]  # CPU storage indexed by device rows
    with DeviceChecks(DRY), pytest.raises(DeviceError, match="mixes devices"):
        a[torch.tensor([0, 1])]  # a pageable CPU index: a blocking upload on CUDA
    with DeviceChecks(DRY), pytest.raises(DeviceError, match="on the host"):
        a.sum().item()
    with DeviceChecks(DRY) as checks:
        torch.as_tensor(0.5, device=DRY)
        a + torch.tensor(2.0)  # a CPU scalar is fine, as on CUDA
    assert [u.non_blocking for u in checks.uploads] == [False]

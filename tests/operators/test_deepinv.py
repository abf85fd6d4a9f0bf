"""deepinv physics as flashdiff operators: agreement with flashdiff's own blur and inpainting, adjointness of every
wrapped config, per-sample parameters from each image's seed, the SR lift, the configs, and SR x2 end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import deepinv as dinv
import hydra.utils
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image

from flashdiff.operators import GaussianBlur, Inpainting
from flashdiff.operators.blur import gaussian_kernels
from flashdiff.operators.deepinv import DeepInvOperator, lift, lift_adjoint

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "operator"
CONFIGS = sorted(p.stem for p in CONF_DIR.glob("deepinv_*.yaml"))


def load(name: str, **overrides) -> DeepInvOperator:
    """Instantiate ``conf/operator/<name>.yaml`` as Hydra would (dotted keys overridden)."""
    cfg = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    for key, value in overrides.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    return hydra.utils.instantiate(cfg)


def images(batch: int, size: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random images (B, 3, size, size) in [0, 1]."""
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_configs_found() -> None:
    assert {"deepinv_sr2", "deepinv_motion_blur", "deepinv_gaussian_blur", "deepinv_inpaint"} <= set(CONFIGS)


# -- agreement with flashdiff's own operators ----------------------------------------------------------------------
@pytest.mark.parametrize("use_fft", [False, True])
def test_reflect_blur_agrees_with_flashdiff_given_the_same_kernel(use_fft: bool) -> None:
    kernel = gaussian_kernels(torch.tensor([0.4, 1.7, 3.0]), 19)  # (B, k, k)
    kernel[1] = torch.rand(19, 19, generator=torch.Generator().manual_seed(1))  # asymmetric: orientation
    kernel[1] /= kernel[1].sum()
    ours = GaussianBlur(kernel_size=19)
    physics = dinv.physics.Blur(padding="reflect", use_fft=use_fft)
    x, y = images(3, 32, 1), images(3, 32, 2)
    # deepinv convolves, flashdiff cross-correlates: the same operator takes the flipped kernel
    flipped = kernel.flip(-2, -1)[:, None]  # (B, 1, k, k)
    torch.testing.assert_close(physics.A(x, filter=flipped), ours.A(x, {"kernel": kernel}), rtol=0, atol=1e-5)
    torch.testing.assert_close(physics.A_adjoint(y, filter=flipped), ours.A_adjoint(y, {"kernel": kernel}),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("padding", ["circular", "replicate", "constant"])
def test_other_paddings_agree_in_the_interior_only(padding: str) -> None:
    kernel = gaussian_kernels(torch.tensor([2.0, 3.0]), 19)
    x = images(2, 48, 3)
    ours = GaussianBlur(kernel_size=19).A(x, {"kernel": kernel})
    theirs = dinv.physics.Blur(padding=padding).A(x, filter=kernel[:, None])
    p = 19 // 2  # outputs further than the half-width from the border never read the padding
    torch.testing.assert_close(theirs[..., p:-p, p:-p], ours[..., p:-p, p:-p], rtol=0, atol=1e-5)
    assert (theirs - ours).abs().amax() > 1e-2  # the border differs


def test_gaussian_blur_config_draws_and_measures_as_flashdiff_gaussian_blur() -> None:
    ours = GaussianBlur(kernel_size=61, max_std=3.0, min_std=0.001)  # the config's sigma = 0.001 + 2.999 t
    op = load("deepinv_gaussian_blur")
    seeds = torch.tensor([4, 81, 15, 16, 23, 42])
    x = images(6, 64, 5)
    p, q = op.draw(seeds, x.shape), ours.draw(seeds, x.shape)
    assert torch.equal(p["severity"], q["severity"])  # the same t from each image's seed
    torch.testing.assert_close(p["sigma"], q["std"], rtol=0, atol=1e-5)
    torch.testing.assert_close(p["filter"][:, 0], q["kernel"], rtol=0, atol=1e-5)
    torch.testing.assert_close(op.measure(x, p, seeds), ours.measure(x, q, seeds), rtol=0, atol=1e-5)
    y = images(6, 64, 6)
    torch.testing.assert_close(op.A_adjoint(y, p), ours.A_adjoint(y, q), rtol=0, atol=1e-5)


def test_inpaint_agrees_with_flashdiff_inpainting_given_the_same_mask() -> None:
    ours, op = Inpainting(), load("deepinv_inpaint")
    seeds = torch.tensor([1, 2, 3])
    x = images(3, 32, 7)
    q = ours.draw(seeds, x.shape)
    p = {"severity": q["severity"], "mask": q["mask"]}
    torch.testing.assert_close(op.A(x, p), ours.A(x, q), rtol=0, atol=1e-5)
    torch.testing.assert_close(op.A_adjoint(x, p), ours.A_adjoint(x, q), rtol=0, atol=1e-5)
    torch.testing.assert_close(op.measure(x, p, seeds), ours.measure(x, q, seeds), rtol=0, atol=1e-5)


def test_inpaint_config_misses_about_the_severity_fraction() -> None:
    op = load("deepinv_inpaint")
    p = op.draw(torch.arange(16), (16, 3, 64, 64))
    torch.testing.assert_close(p["split_ratio"], 1.0 - 0.8 * p["severity"])
    missing = 1.0 - p["mask"].mean(dim=(1, 2, 3))
    assert p["mask"].shape == (16, 1, 64, 64) and (missing - 0.8 * p["severity"]).abs().max() < 5 * 0.5 / 64
    assert op.generator.split_ratio == 0.2  # the attribute is restored after each draw


# -- every wrapped config ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("lift_mode", ["nearest", "none"])
def test_adjoint(name: str, lift_mode: str) -> None:
    op = load(name, lift=lift_mode)
    params = op.draw(torch.tensor([3, 11, 7]), (3, 3, 32, 32))
    x = images(3, 32, 1, torch.float64)
    y = torch.rand_like(op.A(x, params), dtype=torch.float64)
    lhs = (op.A(x, params) * y).sum(dim=(1, 2, 3))
    rhs = (x * op.A_adjoint(y, params)).sum(dim=(1, 2, 3))
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=0.0)  # deepinv computes in float32


@pytest.mark.parametrize("name", CONFIGS)
def test_parameters_and_y_depend_only_on_the_image_seed(name: str) -> None:
    op = load(name)
    seeds, x = torch.tensor([17, 5, 901]), images(3, 32, 2)
    p_all = op.draw(seeds, x.shape)
    y_all = op.measure(x, p_all, seeds)
    for b in range(3):
        p_one = op.draw(seeds[b:b + 1], (1, *x.shape[1:]))
        for key in p_all:
            assert torch.equal(p_all[key][b:b + 1], p_one[key]), key
        torch.testing.assert_close(y_all[b:b + 1], op.measure(x[b:b + 1], p_one, seeds[b:b + 1]), rtol=0, atol=1e-6)
    assert p_all["severity"].shape == (3,) and all(v.shape[0] == 3 for v in p_all.values())
    assert op.linear


@pytest.mark.parametrize("name", ["deepinv_gaussian_blur", "deepinv_motion_blur", "deepinv_inpaint"])
def test_generator_parameters_differ_between_images(name: str) -> None:
    params = load(name).draw(torch.tensor([1, 2]), (2, 3, 32, 32))
    key = "mask" if "mask" in params else "filter"
    assert not torch.equal(params[key][0], params[key][1])


def test_train_draws_use_the_given_generator() -> None:
    op = load("deepinv_motion_blur")
    a, b = (op.draw(None, (4, 3, 32, 32), train=True, generator=torch.Generator().manual_seed(9)) for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["filter"][0], a["filter"][1])


def test_motion_blur_severity_zero_is_no_blur() -> None:
    op = load("deepinv_motion_blur", severity_range=[0.0, 0.0])
    x = images(2, 32, 4)
    params = op.draw(torch.tensor([1, 2]), x.shape)
    assert torch.equal(params["sigma"], torch.zeros(2))
    torch.testing.assert_close(op.A(x, params), x, rtol=0, atol=1e-5)


# -- super-resolution: deepinv's A, lifted -------------------------------------------------------------------------
def test_sr2_is_deepinv_downsampling_lifted_by_nearest_replication() -> None:
    op, x = load("deepinv_sr2"), images(2, 32, 8)
    params = op.draw(torch.tensor([1, 2]), x.shape)
    assert params["factor"].tolist() == [2, 2] and params["filter"].shape == (2, 1, 8, 8)
    low = dinv.physics.Downsampling(filter="bicubic", factor=2, padding="reflect").A(x)  # (B, 3, 16, 16)
    torch.testing.assert_close(op.A_low(x, params), low, rtol=0, atol=1e-6)
    y = op.A(x, params)
    torch.testing.assert_close(y, F.interpolate(low, scale_factor=2, mode="nearest"), rtol=0, atol=1e-6)
    measured = op.measure(x, params, torch.tensor([1, 2]))  # noise on the low-resolution y, then lifted
    assert torch.equal(measured, lift(measured[..., ::2, ::2], (32, 32)))
    assert 0.04 < (measured - y).std() < 0.06
    assert load("deepinv_sr2", lift="none").A(x, params).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("size,low", [((32, 32), (16, 16)), ((33, 31), (17, 16))])
def test_lift_matches_interpolate_and_its_adjoint(size: tuple[int, int], low: tuple[int, int]) -> None:
    y = torch.rand(2, 3, *low, dtype=torch.float64)
    torch.testing.assert_close(lift(y, size), F.interpolate(y, size=size, mode="nearest"))
    g = torch.rand(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close((lift(y, size) * g).sum(), (y * lift_adjoint(g, low)).sum())


# -- configuration -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_config_composes_and_instantiates(name: str, tmp_path: Path) -> None:
    from tests.test_config import _compose

    cfg = _compose("config", [f"operator={name}", f"hydra.run.dir={tmp_path}"])
    assert cfg.hydra.runtime.choices.operator == name
    op = hydra.utils.instantiate(cfg.operator)
    assert isinstance(op, DeepInvOperator) and 0.0 <= op.severity_range[0] <= op.severity_range[1] <= 1.0


@pytest.mark.parametrize("overrides,key", [
    ({"severity_param": None}, "operator.severity_range"),  # varying severity with nothing to map
    ({"severity_param": "no_such"}, "operator.severity_param=no_such"),
    ({"param_range": [0.1]}, "operator.param_range"),
    ({"lift": "bicubic"}, "operator.lift"),
])
def test_bad_settings_name_their_key(overrides: dict, key: str) -> None:
    with pytest.raises(Exception, match=key.replace("[", r"\[")):
        load("deepinv_gaussian_blur", **overrides)


# -- end to end ----------------------------------------------------------------------------------------------------
def test_sr2_flash_latent_dps_runs_end_to_end(tmp_path: Path, tiny_ldm_dir: Path) -> None:
    from tests.cli.test_cli import run_cli

    out = tmp_path / "run"
    run_cli("operator=deepinv_sr2", "adapter=fixed_e0", "adapter.t_start=100", "solver=latent_dps",
            "solver.num_steps=4", "solver.delta=1.0", "num_images=2", f"model.path={tiny_ldm_dir}",
            f"hydra.run.dir={out}", "logger=disabled", "metrics.fd_toy=null", cwd=tmp_path)
    with open(out / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {float(r["severity"]) for r in rows} == {1.0}
    assert all(1 <= int(r["nfe"]) <= 4 and float(r["psnr"]) > 0 for r in rows)
    measurement = torch.tensor(list(Image.open(out / "measurements" / "00000.png").getdata()))
    assert Image.open(out / "measurements" / "00000.png").size == (32, 32)  # lifted to the image size
    blocks = measurement.view(16, 2, 16, 2, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # 2x2 blocks of one low-resolution pixel
    assert (out / "grid.png").exists()

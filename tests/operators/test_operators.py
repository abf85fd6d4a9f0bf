"""Every operator config: adjointness, shapes, seed determinism, severity; blur/mask specifics."""

from __future__ import annotations

from pathlib import Path

import hydra.utils
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from flashdiff.operators import GaussianBlur, Identity, Inpainting, image_noise_seed
from flashdiff.operators.blur import blur, gaussian_kernels, reflect_pad, reflect_pad_adjoint

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "operator"
NONLINEAR = {"nonlinear_blur"}  # needs weights, has no transpose: tests/operators/test_nonlinear_blur.py
CONFIGS = sorted(p.stem for p in CONF_DIR.glob("*.yaml") if p.stem not in NONLINEAR)


def load(name: str) -> torch.nn.Module:
    """Instantiate ``conf/operator/<name>.yaml`` as Hydra would."""
    return hydra.utils.instantiate(OmegaConf.load(CONF_DIR / f"{name}.yaml"))


def image_size(name: str) -> int:
    """32 for the toy world, 64 otherwise (keeps the tests fast)."""
    return 32 if name.startswith("toy_") else 64


def images(batch: int, size: int, seed: int = 0,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random images (B, 3, size, size) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=gen, dtype=dtype)


def test_configs_found() -> None:
    assert {"blur_varying", "blur_fixed", "inpaint", "identity"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_adjoint(name: str) -> None:
    op, n = load(name), image_size(name)
    seeds = torch.tensor([3, 11, 7])
    params = op.draw(seeds, (3, 3, n, n))
    x, y = images(3, n, 1, torch.float64), images(3, n, 2, torch.float64)
    lhs = (op.A(x, params) * y).sum(dim=(1, 2, 3))
    rhs = (x * op.A_adjoint(y, params)).sum(dim=(1, 2, 3))
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("name", CONFIGS)
def test_shapes_and_keys(name: str) -> None:
    op, n = load(name), image_size(name)
    params = op.draw(torch.arange(4), (4, 3, n, n))
    assert params["severity"].shape == (4,)
    assert op.severity(params).shape == (4,)
    x = images(4, n)
    for out in (op.A(x, params), op.A_adjoint(x, params), op.measure(x, params, torch.arange(4))):
        assert out.shape == x.shape and out.dtype == x.dtype
    if isinstance(op, GaussianBlur):
        assert params["std"].shape == (4,)
        assert params["kernel"].shape == (4, op.kernel_size, op.kernel_size)
    if isinstance(op, Inpainting):
        assert params["mask"].shape == (4, 1, n, n) and params["missing"].shape == (4,)


@pytest.mark.parametrize("name", CONFIGS)
def test_seed_determinism_independent_of_batch(name: str) -> None:
    op, n = load(name), image_size(name)
    x = images(4, n)
    seeds = torch.tensor([5, 42, 9, 1234])
    p_all = op.draw(seeds, x.shape)
    y_all = op.measure(x, p_all, seeds)
    order = torch.tensor([3, 1, 0])  # seed 42's image alone, then among other seeds elsewhere
    p_alone = op.draw(seeds[1:2], (1, *x.shape[1:]))
    y_alone = op.measure(x[1:2], p_alone, seeds[1:2])
    p_perm = op.draw(seeds[order], (3, *x.shape[1:]))
    y_perm = op.measure(x[order], p_perm, seeds[order])
    for key in p_all:
        assert torch.equal(p_all[key][1:2], p_alone[key]), key
        assert torch.equal(p_all[key][1:2], p_perm[key][1:2]), key
    torch.testing.assert_close(y_all[1:2], y_alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(y_all[1:2], y_perm[1:2], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_different_seeds_differ(name: str) -> None:
    op, n = load(name), image_size(name)
    x = images(1, n).expand(2, -1, -1, -1)
    seeds = torch.tensor([1, 2])
    y = op.measure(x, op.draw(seeds, x.shape), seeds)
    assert not torch.allclose(y[0], y[1])
    noise = op.measure(x, op.draw(seeds, x.shape), seeds) - op.A(x, op.draw(seeds, x.shape))
    assert 0.8 * op.noise_std < noise.std() < 1.2 * op.noise_std  # noise everywhere, unclipped


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("train", [False, True])
def test_severity_in_range_and_matches_params(name: str, train: bool) -> None:
    op, n = load(name), image_size(name)
    batch = 64
    if train:
        gen = torch.Generator().manual_seed(0)
        params = op.draw(None, (batch, 3, n, n), train=True, generator=gen)
    else:
        params = op.draw(torch.arange(batch), (batch, 3, n, n))
    t = params["severity"]
    lo, hi = (op.train_severity_range if train else op.severity_range)
    assert t.dtype == torch.float32 and ((t >= lo) & (t <= hi)).all()
    if hi > lo:
        assert t.max() - t.min() > 0.5 * (hi - lo)  # actually spread over the range
    if isinstance(op, GaussianBlur):
        torch.testing.assert_close(params["std"], op.min_std + t * (op.max_std - op.min_std))
    if isinstance(op, Inpainting):
        torch.testing.assert_close(params["missing"], t * op.max_missing)
        frac = 1.0 - params["mask"].mean(dim=(1, 2, 3))
        assert (frac - params["missing"]).abs().max() < 5 * 0.5 / n  # 5 sigma, binomial over n*n
        assert set(params["mask"].unique().tolist()) <= {0.0, 1.0}
    if isinstance(op, Identity):
        assert (t == 0).all()


def test_train_draw_uses_train_range_and_generator() -> None:
    op = GaussianBlur(kernel_size=9, severity_range=[0.9, 1.0], train_severity_range=[0.0, 0.2])
    a = op.draw(None, (32, 3, 16, 16), train=True, generator=torch.Generator().manual_seed(1))
    b = op.draw(None, (32, 3, 16, 16), train=True, generator=torch.Generator().manual_seed(1))
    assert (a["severity"] <= 0.2).all() and torch.equal(a["severity"], b["severity"])
    assert (op.draw(torch.arange(32), (32, 3, 16, 16))["severity"] >= 0.9).all()
    torch.manual_seed(0)
    assert (op.draw(None, (8, 3, 16, 16), train=True)["severity"] <= 0.2).all()  # global RNG


@pytest.mark.parametrize("name", ["blur_fixed", "toy_blur_fixed"])
def test_fixed_blur_has_std_three(name: str) -> None:
    op = load(name)
    params = op.draw(torch.arange(5), (5, 3, 32, 32))
    assert torch.equal(params["std"], torch.full((5,), 3.0))
    assert torch.equal(params["severity"], torch.ones(5))


def test_min_std_maps_severity_onto_std_range() -> None:
    def std_at(t: float) -> torch.Tensor:
        op = GaussianBlur(kernel_size=19, max_std=3.0, min_std=0.3, severity_range=[t, t])
        params = op.draw(torch.arange(3), (3, 3, 32, 32))
        torch.testing.assert_close(params["kernel"], gaussian_kernels(params["std"], 19))
        return params["std"]

    torch.testing.assert_close(std_at(0.0), torch.full((3,), 0.3))  # t = 0: the floor, not the identity
    assert torch.equal(std_at(1.0), torch.full((3,), 3.0))  # t = 1: max_std
    op = GaussianBlur(kernel_size=19, max_std=3.0, min_std=0.3)
    params = op.draw(torch.arange(16), (16, 3, 32, 32))
    torch.testing.assert_close(params["std"], 0.3 + 2.7 * params["severity"])  # the authors' schedule
    x, y = images(16, 32, 1, torch.float64), images(16, 32, 2, torch.float64)
    torch.testing.assert_close((op.A(x, params) * y).sum(dim=(1, 2, 3)),
                               (x * op.A_adjoint(y, params)).sum(dim=(1, 2, 3)), rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("train", [False, True])
def test_min_std_zero_is_bit_identical_to_t_max_std(train: bool) -> None:
    op = GaussianBlur(kernel_size=61, max_std=3.0)  # default min_std = 0: the paper's schedule
    gen = torch.Generator().manual_seed(4) if train else None
    params = op.draw(None if train else torch.arange(8), (8, 3, 64, 64), train=train, generator=gen)
    std = params["severity"] * 3.0  # the schedule before min_std
    assert op.min_std == 0.0 and torch.equal(params["std"], std)
    assert torch.equal(params["kernel"], gaussian_kernels(std, 61))


@pytest.mark.parametrize("min_std", [-0.1, 3.5, float("nan")])
def test_bad_min_std_names_key(min_std: float) -> None:
    with pytest.raises(ValueError, match=r"operator\.min_std"):
        GaussianBlur(max_std=3.0, min_std=min_std)


@pytest.mark.parametrize("kernel_size", [19, 61])
def test_blur_std_zero_is_identity(kernel_size: int) -> None:
    kernel = gaussian_kernels(torch.zeros(2), kernel_size)
    centre = kernel_size // 2
    assert not kernel.isnan().any() and kernel.sum() == 2 and kernel[:, centre, centre].eq(1).all()
    x = images(2, 64)
    torch.testing.assert_close(blur(x, kernel), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernel_size,n", [(61, 64), (19, 32), (5, 17)])
def test_fft_blur_matches_reflect_conv2d(kernel_size: int, n: int) -> None:
    std = torch.tensor([0.0, 0.7, 3.0])
    kernel = gaussian_kernels(std, kernel_size).double()
    kernel[1] = torch.rand(kernel_size, kernel_size, dtype=torch.float64)  # asymmetric: orientation
    x = images(3, n, 5, torch.float64)
    pad = kernel_size // 2
    ref = torch.cat([F.conv2d(F.pad(x[b:b + 1], (pad,) * 4, mode="reflect"),
                              kernel[b].expand(3, 1, -1, -1), groups=3) for b in range(3)])
    torch.testing.assert_close(blur(x, kernel), ref, rtol=1e-7, atol=1e-9)


def test_reflect_pad_matches_torch_and_is_adjoint() -> None:
    x = images(2, 20, 3, torch.float64)
    torch.testing.assert_close(reflect_pad(x, 7), F.pad(x, (7,) * 4, mode="reflect"))
    g = torch.randn(2, 3, 34, 34, dtype=torch.float64)
    torch.testing.assert_close((reflect_pad(x, 7) * g).sum(), (x * reflect_pad_adjoint(g, 7)).sum())
    assert reflect_pad(x, 30).shape == (2, 3, 80, 80)  # pad wider than the image: mirrored again


def test_blur_psnr_decreases_with_std() -> None:
    op = GaussianBlur(kernel_size=19, noise_std=0.0)
    x = images(1, 32).expand(4, -1, -1, -1)
    params = {"std": torch.tensor([0.0, 1.0, 2.0, 3.0])}
    params["kernel"] = gaussian_kernels(params["std"], 19)
    mse = (op.measure(x, params) - x).pow(2).mean(dim=(1, 2, 3))
    psnr = -10 * torch.log10(mse.clamp_min(1e-12))
    assert (psnr[1:] < psnr[:-1]).all()


def test_image_noise_seed_differs_from_param_seed() -> None:
    assert all(image_noise_seed(s) != s for s in range(100))


@pytest.mark.parametrize("build", [
    lambda: GaussianBlur(kernel_size=60),
    lambda: GaussianBlur(kernel_size=0),
    lambda: GaussianBlur(max_std=-1.0),
    lambda: GaussianBlur(noise_std=-0.1),
    lambda: GaussianBlur(severity_range=[0.5, 0.2]),
    lambda: GaussianBlur(severity_range=[0.0, 1.5]),
    lambda: GaussianBlur(train_severity_range=[-0.1, 1.0]),
    lambda: GaussianBlur(severity_range=[0.1]),
    lambda: Inpainting(max_missing=1.2),
    lambda: Inpainting(severity_range=[0.9, 0.8]),
    lambda: Identity(noise_std=-1.0),
])
def test_bad_arguments_raise(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_bad_argument_message_names_key() -> None:
    with pytest.raises(ValueError, match="kernel_size"):
        GaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match="train_severity_range"):
        Inpainting(train_severity_range=[0.0, 2.0])

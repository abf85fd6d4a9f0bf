"""SSIM as the paper measures it (scikit-image / torchmetrics: valid region only) and PSNR, per sample (B,)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from flashdiff.metrics.image import psnr, ssim


def skimage_ssim(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """scikit-image's SSIM per sample in float64 with the paper's settings; (B, C, H, W) -> (B,)."""
    return torch.tensor([structural_similarity(
        a.clamp(0, 1).double().numpy(), b.double().numpy(), data_range=1, channel_axis=0, gaussian_weights=True,
        sigma=1.5, use_sample_covariance=False) for a, b in zip(x, ref)], dtype=torch.float64)


def pair(kind: str, size: int, batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A reference (B, 3, size, size) in [0, 1] and a noisy copy that leaves [0, 1] (so clipping matters)."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "random":
        ref = torch.rand(batch, 3, size, size, generator=gen)
    else:  # smooth: bilinear upsampling of an 8x coarser random image
        coarse = torch.rand(batch, 3, size // 8, size // 8, generator=gen)
        ref = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return ref + 0.1 * torch.randn(ref.shape, generator=gen), ref


@pytest.mark.parametrize("size", [32, 256])
@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_ssim_matches_skimage(kind: str, size: int) -> None:
    x, ref = pair(kind, size)
    s = ssim(x, ref)
    assert s.shape == (3,)
    assert (s.double() - skimage_ssim(x, ref)).abs().max() < 1e-4


def test_ssim_identical_images_is_one() -> None:
    _, ref = pair("smooth", 32)
    flat = torch.zeros(2, 3, 16, 16)
    torch.testing.assert_close(ssim(ref, ref), torch.ones(3), rtol=0, atol=1e-6)
    torch.testing.assert_close(ssim(flat, flat), torch.ones(2), rtol=0, atol=0)  # no eps bias on flat images


def test_ssim_per_sample_independent_of_batch() -> None:
    x, ref = pair("random", 32, batch=4)
    torch.testing.assert_close(ssim(x[2:3], ref[2:3]), ssim(x, ref)[2:3], rtol=0, atol=1e-6)


def test_ssim_ignores_padded_border() -> None:
    """A strong 3-pixel frame: the old 'same'-padded mean (about 0.62) is far from the valid-region value (0.98)."""
    from kornia.metrics import ssim as ssim_map

    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 32, 32, generator=gen)
    x = ref.clone()
    x[..., :3, :], x[..., -3:, :], x[..., :3], x[..., -3:] = 1.0, 0.0, 1.0, 0.0
    expected = skimage_ssim(x, ref)
    padded = ssim_map(x, ref, 11, 1.0).flatten(1).mean(1).double()  # the old convention
    assert (ssim(x, ref).double() - expected).abs().max() < 1e-4
    assert ((padded - expected).abs() > 0.2).all()


def test_ssim_too_small_image_raises() -> None:
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(1, 3, 10, 32), torch.rand(1, 3, 10, 32))


def test_psnr_clips_and_is_per_sample() -> None:
    ref = torch.full((2, 3, 8, 8), 0.5)
    x = torch.stack([ref[0] + 0.1, ref[1] + 2.0])  # the second clips to 1: error 0.5
    np.testing.assert_allclose(psnr(x, ref).numpy(), [20.0, 10 * np.log10(4.0)], rtol=1e-5)

"""Gaussian blur ``A x = k * pad(x)``: kernel std ``min_std + severity (max_std - min_std)`` per sample, reflect
padding, FFT convolution."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from kornia.filters import get_gaussian_kernel2d
from torch import Tensor

from flashdiff.operators.base import NoisyOperator, params_device
from flashdiff.types import Params

log = logging.getLogger(__name__)


def gaussian_kernels(std: Tensor, kernel_size: int) -> Tensor:
    """Normalised Gaussian kernels (B, k, k) for stds (B,); std 0 gives the delta kernel."""
    sigma = std.double().clamp_min(1e-3)[:, None].expand(-1, 2)  # (B, 2)
    return get_gaussian_kernel2d(kernel_size, sigma).to(std.dtype)


def reflect_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Indices (n + 2 pad,) of reflect padding (F.pad 'reflect'; mirrored again if pad >= n)."""
    j = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(j)
    period = 2 * (n - 1)
    j = j.remainder(period)
    return torch.where(j < n, j, period - j)


def next_fast_len(n: int) -> int:
    """Smallest 2-3-5-smooth integer >= n (a fast FFT length)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def reflect_pad(x: Tensor, pad: int) -> Tensor:
    """Reflect-pad the last two dims by ``pad``: (B, C, H, W) -> (B, C, H + 2p, W + 2p)."""
    ih = reflect_index(x.shape[-2], pad, x.device)
    iw = reflect_index(x.shape[-1], pad, x.device)
    return x.index_select(-2, ih).index_select(-1, iw)


def reflect_pad_adjoint(xp: Tensor, pad: int) -> Tensor:
    """Adjoint of ``reflect_pad`` (scatter-add): (B, C, H + 2p, W + 2p) -> (B, C, H, W)."""
    h, w = xp.shape[-2] - 2 * pad, xp.shape[-1] - 2 * pad
    ih = reflect_index(h, pad, xp.device)
    iw = reflect_index(w, pad, xp.device)
    rows = xp.new_zeros(*xp.shape[:-2], h, xp.shape[-1]).index_add_(-2, ih, xp)
    return xp.new_zeros(*xp.shape[:-2], h, w).index_add_(-1, iw, rows)


def _kernel_spectrum(kernel: Tensor, size: tuple[int, int], like: Tensor) -> Tensor:
    """rfft2 of kernels (B, k, k) zero-padded to ``size``, tap (0, 0) at 0: (B, 1, n, m//2+1)."""
    return torch.fft.rfft2(kernel.to(like)[:, None], s=size)


def blur(x: Tensor, kernel: Tensor) -> Tensor:
    """``conv2d(reflect_pad(x), k)`` by FFT: x (B, C, H, W), kernel (B, k, k) -> (B, C, H, W)."""
    pad = kernel.shape[-1] // 2
    h, w = x.shape[-2:]
    xp = reflect_pad(x, pad)  # (B, C, H + 2p, W + 2p)
    size = (next_fast_len(xp.shape[-2]), next_fast_len(xp.shape[-1]))
    # valid cross-correlation = circular correlation (conj spectrum), read where it does not wrap
    spec = torch.fft.rfft2(xp, s=size) * _kernel_spectrum(kernel, size, x).conj()
    return torch.fft.irfft2(spec, s=size)[..., :h, :w]


def blur_adjoint(y: Tensor, kernel: Tensor) -> Tensor:
    """Exact adjoint of ``blur``: zero-pad, circular conv, fold the border back; (B, C, H, W)."""
    pad = kernel.shape[-1] // 2
    hp, wp = y.shape[-2] + 2 * pad, y.shape[-1] + 2 * pad
    size = (next_fast_len(hp), next_fast_len(wp))
    # adjoint of the crop is zero-padding (rfft2's s=), of correlation is convolution
    spec = torch.fft.rfft2(y, s=size) * _kernel_spectrum(kernel, size, y)
    return reflect_pad_adjoint(torch.fft.irfft2(spec, s=size)[..., :hp, :wp], pad)


class GaussianBlur(NoisyOperator):
    """Gaussian blur, kernel std ``min_std + severity (max_std - min_std)`` per sample, shared by channels, plus noise.

    ``min_std = 0`` is the paper's std ~ U[0, max_std]; ``min_std = 0.3`` the authors' code (0.3 + 2.7 severity).
    """

    def __init__(self, kernel_size: int = 61, max_std: float = 3.0,
                 severity_range: Sequence[float] = (0.0, 1.0),
                 train_severity_range: Sequence[float] = (0.0, 1.0),
                 noise_std: float = 0.05, min_std: float = 0.0) -> None:
        super().__init__(severity_range, train_severity_range, noise_std)
        if (isinstance(kernel_size, bool) or int(kernel_size) != kernel_size or kernel_size < 1
                or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        if not float(max_std) >= 0.0:
            raise ValueError(f"max_std must be >= 0, got {max_std}")
        if not 0.0 <= float(min_std) <= float(max_std):
            raise ValueError(f"operator.min_std must satisfy 0 <= min_std <= max_std = {max_std}, got {min_std}; "
                             "use 0 (the paper) or e.g. 0.3 (the authors' code)")
        self.kernel_size = int(kernel_size)
        self.max_std = float(max_std)
        self.min_std = float(min_std)

    def draw(self, seeds: Tensor | None, shape: tuple[int, ...], *, train: bool = False,
             generator: torch.Generator | None = None) -> Params:
        """Params for a (B, C, H, W) batch: ``severity``, ``std`` (B,), ``kernel`` (B, k, k)."""
        severity, _ = self._draw_severity(seeds, shape[0], train, generator)
        std = self.min_std + severity * (self.max_std - self.min_std)  # min_std 0: exactly severity * max_std
        device = params_device(seeds, generator)
        kernel = gaussian_kernels(std, self.kernel_size)
        return {"severity": severity.to(device), "std": std.to(device), "kernel": kernel.to(device)}

    def A(self, x: Tensor, params: Params) -> Tensor:
        """Blurred image (B, C, H, W), same size as ``x``."""
        return blur(x, params["kernel"].to(x.device))

    def A_adjoint(self, y: Tensor, params: Params) -> Tensor:
        """Transpose of ``A`` applied to ``y`` (B, C, H, W)."""
        return blur_adjoint(y, params["kernel"].to(y.device))

    def extra_repr(self) -> str:
        """Constructor values for ``print(module)``."""
        return (f"kernel_size={self.kernel_size}, min_std={self.min_std}, max_std={self.max_std}, "
                f"severity_range={self.severity_range}, "
                f"train_severity_range={self.train_severity_range}, noise_std={self.noise_std}")

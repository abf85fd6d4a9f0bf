"""Nonlinear (motion) blur ``A x = K(x, k)``: the bkse KernelWizard (Tran et al. 2021, GOPRO_wVAE) with a random
kernel code ``k`` per image (paper §4, METHOD.md §5).

The network is re-implemented from its published description; module names follow the released state dict, so
``GOPRO_wVAE.pth`` loads with ``strict=True``. As the authors' code (reference_impl §4): the code is
``randn(512, 2, 2) * 1.2`` from the image's seed, and the network sees the [0, 1] image compressed to [0.5, 1]
(``(x + 1) / 2``) with its output mapped back by ``clamp(2 K - 1, -1, 1)`` — a camera-response-like rescaling kept
because measurements and data consistency must use the same ``A``. There is no transpose (PSLD refuses it).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flashdiff.operators.base import NoisyOperator, draw_severity, params_device, per_sample_generators
from flashdiff.types import Params

log = logging.getLogger(__name__)


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))``, 3x3 convolutions with bias (bkse's residual block without BN)."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ExtractorBlock(nn.Module):
    """``x + convs(x)``: reflect-padded 3x3 conv pair without bias (the kernel extractor's blocks; norm = identity)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.Identity(),
                                        nn.ReLU(), nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False),
                                        nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class KernelExtractor(nn.Module):
    """The encoder F(sharp, blurred) -> kernel code (mean and log-variance halves); only its weights are needed here.

    It is part of the released state dict, so it is built for ``strict`` loading; the operator never calls it.
    """

    def __init__(self, nf: int, kernel_dim: int, n_blocks: int) -> None:
        super().__init__()
        out = 2 * kernel_dim  # VAE: mean and log-variance
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(2 * nf, nf, 7, bias=False), nn.Identity(),
                                   nn.ReLU()]
        for level in range(5):  # five stride-2 stages, widths capped at 2 * kernel_dim
            cin, cout = min(nf * 2**level, out), min(nf * 2 ** (level + 1), out)
            layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.Identity(), nn.ReLU()]
        layers += [ExtractorBlock(out) for _ in range(n_blocks)]
        self.model = nn.Sequential(*layers)


class UNetLevel(nn.Module):
    """One level of the kernel adapter G: stride-2 conv down, the inner levels (or the code), transposed conv up.

    Inner levels return ``cat(up(...), a)`` with ``a = LeakyReLU(x)``: the released network was trained with an
    in-place activation that also changed the skip tensor, so the skip carries the activation.
    """

    def __init__(self, outer: int, inner: int, submodule: UNetLevel | None = None, outermost: bool = False,
                 in_channels: int | None = None) -> None:
        super().__init__()
        self.outermost, self.innermost = outermost, submodule is None
        down = nn.Conv2d(in_channels or outer, inner, 4, 2, 1, bias=False)
        up = nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=outermost)
        if outermost:
            self.down, self.up = nn.Sequential(down), nn.Sequential(nn.ReLU(), up, nn.Tanh())
        elif self.innermost:
            self.down, self.up = nn.Sequential(nn.LeakyReLU(0.2), down), nn.Sequential(nn.ReLU(), up, nn.Identity())
        else:
            self.down = nn.Sequential(nn.LeakyReLU(0.2), down, nn.Identity())
            self.up = nn.Sequential(nn.ReLU(), up, nn.Identity())
        if submodule is not None:
            self.submodule = submodule

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        if self.outermost:
            return self.up(self.submodule(self.down(x), code))
        a = self.down[0](x)
        h = self.down[1:](a)
        h = torch.cat((h, code), dim=1) if self.innermost else self.submodule(h, code)
        return torch.cat((self.up(h), a), dim=1)


class KernelWizard(nn.Module):
    """bkse's KernelWizard: ``K(x, k) = x + trunk(G(features(x), k))`` (``adapt``); GOPRO_wVAE sizes by default."""

    def __init__(self, nf: int = 64, front_blocks: int = 10, back_blocks: int = 20, kernel_dim: int = 512,
                 extractor_blocks: int = 4) -> None:
        super().__init__()
        self.nf = nf
        lrelu = nn.LeakyReLU(0.1)
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(3, nf, 3, 1, 1), lrelu, nn.Conv2d(nf, nf, 3, 2, 1), lrelu, nn.Conv2d(nf, nf, 3, 2, 1), lrelu,
            *[ResBlock(nf) for _ in range(front_blocks)])
        self.kernel_extractor = KernelExtractor(nf, kernel_dim, extractor_blocks)
        level = UNetLevel(8 * nf, 8 * nf)
        for outer, inner in ((4 * nf, 8 * nf), (2 * nf, 4 * nf), (nf, 2 * nf)):
            level = UNetLevel(outer, inner, level)
        self.adapter = nn.Module()
        self.adapter.model = UNetLevel(nf, nf, level, outermost=True, in_channels=nf)
        self.recon_trunk = nn.Sequential(
            *[ResBlock(nf) for _ in range(back_blocks)],
            nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2), lrelu, nn.Conv2d(nf, 4 * nf, 3, 1, 1),
            nn.PixelShuffle(2), lrelu, nn.Conv2d(nf, nf, 3, 1, 1), lrelu, nn.Conv2d(nf, 3, 3, 1, 1))

    def code_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of the kernel code for (height, width) images: 8 nf channels at 1/128 resolution."""
        if height % 128 or width % 128:
            raise ValueError(f"nonlinear blur needs image sides divisible by 128, got {height}x{width}")
        return 8 * self.nf, height // 128, width // 128

    def adapt(self, x: Tensor, code: Tensor) -> Tensor:
        """Blur sharp ``x`` (B, 3, H, W) with kernel codes (B, 8 nf, H/128, W/128): bkse's ``adaptKernel``."""
        return x + self.recon_trunk(self.adapter.model(self.feature_extractor(x), code))


class NonlinearBlur(NoisyOperator):
    """``A(x) = clamp(2 K((x + 1) / 2, k) - 1, -1, 1)`` blended with ``x`` by the severity (1: all of it).

    Test severity is 1 (the authors' operator). Training may draw the severity over a range
    (``train_severity_range``): the authors train on full-strength kernels only; a blend ``x + severity (A(x) - x)``
    gives the severity encoder a severity to rank. The kernel code of sample ``b`` is the first draw of
    ``Generator(seed_b)``, so run seed 0 gives the authors' kernel for the same image id.
    """

    linear = False  # no transpose: PSLD refuses this operator

    def __init__(self, weights: str | Path, code_scale: float = 1.2, severity_range: Sequence[float] = (1.0, 1.0),
                 train_severity_range: Sequence[float] = (0.0, 1.0), noise_std: float = 0.05, nf: int = 64,
                 front_blocks: int = 10, back_blocks: int = 20, kernel_dim: int = 512, extractor_blocks: int = 4,
                 config_key: str = "paths.bkse_weights") -> None:
        super().__init__(severity_range, train_severity_range, noise_std)
        self.code_scale = float(code_scale)
        self.network = KernelWizard(nf, front_blocks, back_blocks, kernel_dim, extractor_blocks)
        load_weights(self.network, weights, config_key)
        self.network.requires_grad_(False).eval()

    def __deepcopy__(self, memo: dict) -> NonlinearBlur:
        """Copies share the frozen network (the severity trainer copies operators per validation severity)."""
        memo[id(self.network)] = self.network
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return new

    def draw(self, seeds: Tensor | None, shape: tuple[int, ...], *, train: bool = False,
             generator: torch.Generator | None = None) -> Params:
        """Params for (B, 3, H, W): ``code`` (B, 8 nf, H/128, W/128) drawn first per sample, then ``severity`` (B,)."""
        gens = per_sample_generators(seeds, shape[0], generator)
        size = self.network.code_shape(*shape[-2:])
        codes = [torch.randn(size, generator=g, device=g.device if g is not None else "cpu").cpu() for g in gens]
        code = torch.stack(codes) * self.code_scale if codes else torch.zeros(0, *size)
        severity = draw_severity(gens, self.train_severity_range if train else self.severity_range)
        device = params_device(seeds, generator)
        return {"severity": severity.to(device), "code": code.to(device)}

    def A(self, x: Tensor, params: Params) -> Tensor:
        """Blurred image (B, 3, H, W); differentiable in ``x`` (the network is frozen)."""
        net_dtype = next(self.network.parameters()).dtype
        blurred = self.network.adapt(((x + 1.0) / 2.0).to(net_dtype), params["code"].to(x.device, net_dtype))
        blurred = (2.0 * blurred - 1.0).clamp(-1.0, 1.0).to(x.dtype)  # the authors' double rescale
        severity = params["severity"].to(x).view(-1, 1, 1, 1)
        return torch.lerp(x, blurred, severity)  # exactly `blurred` at severity 1

    def A_adjoint(self, y: Tensor, params: Params) -> Tensor:
        """Not defined: the operator is nonlinear."""
        raise NotImplementedError("NonlinearBlur has no transpose (A_adjoint): it is a nonlinear operator")

    def extra_repr(self) -> str:
        """Constructor values for ``print(module)``."""
        return (f"code_scale={self.code_scale}, severity_range={self.severity_range}, "
                f"train_severity_range={self.train_severity_range}, noise_std={self.noise_std}")


def load_weights(network: KernelWizard, weights: str | Path, config_key: str) -> None:
    """Load a bkse ``GOPRO_wVAE.pth`` state dict (strict); FileNotFoundError naming ``config_key`` when absent."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{config_key}={path}: no such file. The nonlinear-blur operator needs the bkse KernelWizard weights "
            "GOPRO_wVAE.pth (github.com/VinAIResearch/blur-kernel-space-exploring, 'experiments/pretrained'; Google "
            f"Drive id 1vRoDpIsrTRYZKsOMPNbPcMtFDpCT6Foy): download it there or pass {config_key}=/path/to/it")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())  # one line: Hydra shows the message's repr
        raise ValueError(f"{config_key}={path} is not a bkse KernelWizard (GOPRO_wVAE) state dict of this size: "
                         f"{detail}") from err
    log.info("nonlinear blur: bkse KernelWizard weights from %s", path)

"""Severity encoder ``Ê(y) = (ẑ, σ̂²)`` (paper §3.1, METHOD.md §2): a fine-tuned copy of ``E0`` plus a σ head.

The head is a module of its own: the paper's 1×1 conv (``ConvHead``, the default) or an experimental one
(``flashdiff.severity.heads``). Weights are stored as safetensors beside a json config that rebuilds the architecture
with diffusers and the head from its ``_target_`` and keyword arguments, so a saved encoder loads without the LDM
folder it came from. The loss is ``flashdiff.severity.loss``; ordering statistics are ``flashdiff.metrics.ordering``.
"""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import VQModel
from torch import Tensor, nn

from flashdiff.diffusion.model import AUTOENCODERS, LatentDiffusion
from flashdiff.weights import CONFIG_NAME, FolderSaved, read_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadInputs:
    """Channels of what a σ head may read: ``ẑ`` (``latent``), the encoder's last hidden features (input of its
    ``conv_out``, ``features``) and its first, full-resolution feature map (output of its ``conv_in``, ``early``)."""

    latent: int
    features: int
    early: int


class SigmaHead(nn.Module):
    """A σ head: ``σ̂²`` (B,) from ``ẑ`` (B, C, h, w) and the encoder features it ``reads`` ("features", "early").

    Built as ``Head(inputs: HeadInputs, **kwargs)``; it keeps its keyword arguments, so ``config()`` (``_target_``
    plus kwargs) rebuilds it. ``start_at`` is its data-dependent initialisation.
    """

    reads: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs

    def config(self) -> dict[str, Any]:
        """``{"_target_": "<module>.<class>", **kwargs}``: what ``head_factory`` rebuilds the head from."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", **self.kwargs}

    def start_at(self, v0: float, mean_sigma2: Callable[[], float]) -> float:
        """Make the mean ``σ̂²`` start at ``v0`` (``mean_sigma2()``: its current value on a batch); the factor."""
        raise NotImplementedError


class ConvHead(SigmaHead):
    """The paper's head: ``σ̂² = mean_{C,h,w} (W ẑ + b)²`` with one 1×1 conv (C -> C).

    ``W, b`` are stored as ``lr_mult * raw`` so that Adam moves them ``lr_mult`` times faster than the encoder at
    one learning rate (Adam's step is invariant to the gradient scale of ``raw``); 1 = the paper's single rate.
    """

    def __init__(self, inputs: HeadInputs, *, lr_mult: float = 1.0) -> None:
        if not float(lr_mult) > 0.0:
            raise ValueError(f"train.head.lr_mult must be > 0, got {lr_mult}")
        super().__init__(lr_mult=float(lr_mult))
        self.lr_mult = float(lr_mult)
        conv = nn.Conv2d(inputs.latent, inputs.latent, 1)  # PyTorch default init, as the authors
        self.weight = nn.Parameter(conv.weight.detach() / self.lr_mult)  # raw: W = lr_mult * raw
        self.bias = nn.Parameter(conv.bias.detach() / self.lr_mult)

    def conv(self, z: Tensor, features: Tensor | None) -> Tensor:
        """``W ẑ + b``: (B, C, h, w) -> same."""
        return F.conv2d(z, self.lr_mult * self.weight, self.lr_mult * self.bias)

    def forward(self, z: Tensor, features: Tensor | None = None, early: Tensor | None = None) -> Tensor:
        """``σ̂² = mean_{C,h,w} (W ẑ + b)²``: (B, C, h, w) -> (B,)."""
        return self.conv(z, features).pow(2).mean(dim=(1, 2, 3))

    def scaled(self) -> list[nn.Parameter]:
        """The parameters ``start_at`` rescales (every one the output is linear in)."""
        return [self.weight, self.bias]

    @torch.no_grad()
    def start_at(self, v0: float, mean_sigma2: Callable[[], float]) -> float:
        """Rescale ``W, b`` by ``sqrt(v0 / mean σ̂²)``: ``σ̂²`` is quadratic in them."""
        current = mean_sigma2()
        if not current > 0.0 or not float(v0) > 0.0:
            raise ValueError(f"cannot rescale the σ head: mean σ̂² = {current}, target v0 = {v0} (both must be > 0)")
        factor = (float(v0) / current) ** 0.5
        for p in self.scaled():
            p.mul_(factor)
        log.info("σ head rescaled by %.4g: mean σ̂² %.4g -> %.4g", factor, current, v0)
        return factor


HeadFactory = Callable[[HeadInputs], SigmaHead]


def head_factory(spec: dict[str, Any] | HeadFactory | None) -> HeadFactory:
    """A head class with its kwargs bound, from a saved ``config()`` (``_target_`` + kwargs); a factory as is;
    None -> the paper's ``ConvHead``. ``_target_`` must name a ``SigmaHead`` class."""
    if spec is None:
        return ConvHead
    if callable(spec):
        return spec
    kwargs = {k: v for k, v in spec.items() if k not in ("_target_", "_partial_")}
    module, _, name = str(spec.get("_target_", "")).rpartition(".")
    cls = getattr(importlib.import_module(module), name, None) if module else None
    if not (isinstance(cls, type) and issubclass(cls, SigmaHead)):
        raise TypeError(f"head _target_ {spec.get('_target_')!r} is not a σ head class (a flashdiff SigmaHead)")
    return partial(cls, **kwargs)


class SeverityEncoder(FolderSaved, nn.Module):
    """``y`` (B, 3, H, W) in [0,1] -> ``ẑ`` (B, C, h, w) in ``LatentDiffusion.encode`` units and ``σ̂²`` (B,).

    ``ẑ = scale * (quant_conv(encoder(2y - 1)) - shift)`` (shift: SD3 / Flux, else 0; for AutoencoderKL the first
    half of the moments, the posterior mean; for VQModel the unquantised latent); ``σ̂² = head(ẑ, …)``. ``head`` is a
    ``SigmaHead`` or what builds one from ``HeadInputs`` (a class, a ``functools.partial``, a saved head config);
    None = the paper's ``ConvHead``.
    """

    def __init__(self, encoder: nn.Module, quant_conv: nn.Module | None,
                 head: SigmaHead | HeadFactory | dict[str, Any] | None = None, *, autoencoder_class: str,
                 autoencoder_config: dict[str, Any], scale_factor: float) -> None:
        super().__init__()
        if autoencoder_class not in AUTOENCODERS:
            raise TypeError(f"severity encoder needs an autoencoder of class {sorted(AUTOENCODERS)}, "
                            f"got {autoencoder_class!r}")
        self.encoder = encoder
        self.quant_conv = quant_conv if quant_conv is not None else nn.Identity()
        self.autoencoder_class = autoencoder_class
        self.autoencoder_config = dict(autoencoder_config)
        self.scale_factor = float(scale_factor)
        self.shift_factor = float(self.autoencoder_config.get("shift_factor") or 0.0)  # SD3 / Flux autoencoders
        self.latent_channels = latent_channels(autoencoder_class, autoencoder_config)
        inputs = HeadInputs(self.latent_channels, encoder.conv_out.in_channels, encoder.conv_in.out_channels)
        self.head = head if isinstance(head, SigmaHead) else head_factory(head)(inputs)
        self._taps: dict[str, Tensor] = {}
        if "features" in self.head.reads:
            self.encoder.conv_out.register_forward_pre_hook(self._keep_features)
        if "early" in self.head.reads:
            self.encoder.conv_in.register_forward_hook(self._keep_early)

    def _keep_features(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        """Forward pre-hook on ``encoder.conv_out``: keep its input, the features ``ẑ`` is computed from."""
        self._taps["features"] = args[0]

    def _keep_early(self, module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        """Forward hook on ``encoder.conv_in``: keep its output, the full-resolution features."""
        self._taps["early"] = output

    @classmethod
    def from_latent_diffusion(cls, ldm: LatentDiffusion,
                              head: SigmaHead | HeadFactory | dict[str, Any] | None = None) -> SeverityEncoder:
        """A trainable deep copy of ``E0`` (encoder + quant_conv) of ``ldm``, so that before training ``ẑ = E0(y)``."""
        ae = ldm.autoencoder
        name = type(ae).__name__
        if name not in AUTOENCODERS:
            raise TypeError(f"severity encoder needs model.autoencoder of class {sorted(AUTOENCODERS)}, got {name}")
        config = {k: v for k, v in dict(ae.config).items() if not k.startswith("_")}
        config["scaling_factor"] = ldm.scale_factor  # informative only: ``scale_factor`` is what is applied
        config["shift_factor"] = ldm.shift_factor or None  # SD3 / Flux: ẑ = scale (E(y) - shift), as encode
        model = cls(copy.deepcopy(ae.encoder), copy.deepcopy(ae.quant_conv), head, autoencoder_class=name,
                    autoencoder_config=config, scale_factor=ldm.scale_factor)
        return model.requires_grad_(True).train()

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``Ê(y) = (ẑ, σ̂²)`` (paper eq. 2): (B, 3, H, W) in [0,1] -> (B, C, h, w), (B,)."""
        moments = self.quant_conv(self.encoder(2.0 * y - 1.0))
        z_hat = (moments[:, : self.latent_channels] - self.shift_factor) * self.scale_factor  # KL: posterior mean
        taps, self._taps = self._taps, {}
        return z_hat, self.head(z_hat, **taps)

    @torch.no_grad()
    def init_head_scale(self, y: Tensor, v0: float) -> float:
        """Start the head at a batch mean ``σ̂²(y) = v0`` (data-dependent init); returns the head's rescale factor."""
        return self.head.start_at(float(v0), lambda: self(y)[1].mean().item())

    def check_matches(self, ldm: LatentDiffusion) -> None:
        """Raise ValueError if ``ldm``'s latents are not in this encoder's units (class, channels, scale factor)."""
        name = type(ldm.autoencoder).__name__
        channels = latent_channels(name, dict(ldm.autoencoder.config)) if name in AUTOENCODERS else None
        if (name, channels) != (self.autoencoder_class, self.latent_channels) or not torch.allclose(
                torch.tensor([ldm.scale_factor, getattr(ldm, "shift_factor", 0.0)]),
                torch.tensor([self.scale_factor, self.shift_factor])):
            raise ValueError(f"severity encoder was built for {self.autoencoder_class} with {self.latent_channels} "
                             f"latent channels at scale {self.scale_factor:.6g} (shift {self.shift_factor:.6g}); the "
                             f"model has {name} with {channels} at scale {ldm.scale_factor:.6g} (shift "
                             f"{getattr(ldm, 'shift_factor', 0.0):.6g}): train the encoder from this model")

    def config(self) -> dict[str, Any]:
        """The json-serialisable description that ``from_pretrained`` rebuilds the architecture from."""
        return {"_class_name": type(self).__name__, "autoencoder_class": self.autoencoder_class,
                "autoencoder_config": self.autoencoder_config, "scale_factor": self.scale_factor,
                "latent_channels": self.latent_channels, "head": self.head.config()}

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> SeverityEncoder:
        """Rebuild from ``config.json`` with diffusers ``from_config``, load the safetensors weights; eval mode.

        Reads folders written before heads were modules too (``head_*`` flags, ``head_weight``-style weights).
        """
        config, weights = read_folder(folder, f"severity_encoder={folder}: no severity encoder there; train one with "
                                              "`python -m flashdiff.train train=severity_blur` (or `make toy-models`), "
                                              "or point severity_encoder at one")
        name = config["autoencoder_class"]
        if name not in AUTOENCODERS:
            raise TypeError(f"{Path(folder) / CONFIG_NAME}: unknown autoencoder_class {name!r}")
        if "head" not in config:
            config, weights = from_flags(config, weights)
        ae = AUTOENCODERS[name].from_config(config["autoencoder_config"])
        model = cls(ae.encoder, ae.quant_conv, config["head"], autoencoder_class=name,
                    autoencoder_config=config["autoencoder_config"], scale_factor=config["scale_factor"])
        model.load_state_dict(weights)
        log.debug("loaded severity encoder (%s, scale %.4f) from %s", name, model.scale_factor, folder)
        return model.requires_grad_(False).eval()


HEADS = "flashdiff.severity.heads"
FLAG_WEIGHTS = {"head_weight": "head.weight", "head_bias": "head.bias", "feature_weight": "head.feature_weight",
                "context.": "head.context.", "energy_head.": "head."}


def from_flags(config: dict[str, Any], weights: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A config and weights of the flag era (``head_lr_mult``, ``head_context``, ``head_features``, ``head_energy``,
    ``head_energy_early``, ``head_stop_grad``) as a ``head`` config and the head module's weight names."""
    lr_mult, context = float(config["head_lr_mult"]), int(config.get("head_context", 0))
    features, energy = bool(config.get("head_features", False)), int(config.get("head_energy", 0))
    if energy:
        head = {"_target_": f"{HEADS}.EnergyHead", "width": energy,
                "early": bool(config.get("head_energy_early", False)), "lr_mult": lr_mult}
    else:
        names = {(False, False): f"{__name__}.ConvHead", (True, False): f"{HEADS}.ContextHead",
                 (False, True): f"{HEADS}.FeatureHead", (True, True): f"{HEADS}.ContextFeatureHead"}
        cls = names[(context > 0, features)]
        head = {"_target_": cls, "lr_mult": lr_mult} | ({"width": context} if context else {})
    renamed = {}
    for key, value in weights.items():
        old = next((k for k in FLAG_WEIGHTS if key == k or (k.endswith(".") and key.startswith(k))), None)
        renamed[key if old is None else FLAG_WEIGHTS[old] + key[len(old):]] = value
    if config.get("head_stop_grad", False):
        head = {"_target_": f"{HEADS}.StopGrad", "head": head}
        renamed = {f"head.inner.{k[5:]}" if k.startswith("head.") else k: v for k, v in renamed.items()}
    return config | {"head": head}, renamed


def latent_channels(autoencoder_class: str, config: dict[str, Any]) -> int:
    """Channels C of ``ẑ``: ``latent_channels`` for AutoencoderKL, ``vq_embed_dim`` (or it) for VQModel."""
    if autoencoder_class == VQModel.__name__:
        return int(config.get("vq_embed_dim") or config["latent_channels"])
    return int(config["latent_channels"])

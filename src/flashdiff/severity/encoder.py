"""Severity encoder ``Ê(y) = (ẑ, σ̂²)`` (paper §3.1, METHOD.md §2): a fine-tuned copy of ``E0`` plus a 1×1 σ head.

Also the loss of METHOD.md §2 and the two quality measures: ordering accuracy (App. C, Def. 1) and Spearman's rank
correlation. Weights are stored as safetensors beside a json config that rebuilds the architecture with diffusers,
so a saved encoder loads without the LDM folder it came from.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import VQModel
from torch import Tensor, nn
from torch.nn.utils import parametrize

from flashdiff.diffusion.model import AUTOENCODERS, LatentDiffusion
from flashdiff.weights import CONFIG_NAME, FolderSaved, read_folder

log = logging.getLogger(__name__)


class _Scaled(nn.Module):
    """Parametrization ``w = mult * raw``: Adam then moves ``w`` ``mult`` times faster than at the base lr."""

    def __init__(self, mult: float) -> None:
        super().__init__()
        self.mult = float(mult)

    def forward(self, raw: Tensor) -> Tensor:
        return self.mult * raw

    def right_inverse(self, w: Tensor) -> Tensor:
        return w / self.mult


class EnergyHead(nn.Module):
    """OPTION, not the paper: ``σ̂² = softplus(MLP(log mean_{h,w} (g(h))²))`` from encoder features ``h``.

    ``g`` is two 3×3 convs of width ``width``; the log-energy pooling reads how much structure each filter finds
    (blur removes it), which a mean of squares of a 1×1 conv of ``ẑ`` cannot turn into "more blur = larger σ̂²".
    With ``early`` > 0 (``head_energy_early``) a second such branch reads the encoder's first, full-resolution
    feature map ``e`` (``early`` channels) and the MLP reads both sets of log energies.
    The last layer starts at zero, so before training ``σ̂²`` is the constant its bias gives (``init_head_scale``).
    """

    def __init__(self, features: int, width: int, lr_mult: float, early: int = 0) -> None:
        super().__init__()
        self.filters = _filters(features, width)
        self.early = _filters(early, width) if early else None
        inputs = 2 * width if early else width
        self.mlp = nn.Sequential(nn.Linear(inputs, 2 * width), nn.SiLU(), nn.Linear(2 * width, 1))
        nn.init.zeros_(self.mlp[-1].weight)
        for module in list(self.modules()):
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                for name, _ in list(module.named_parameters(recurse=False)):
                    parametrize.register_parametrization(module, name, _Scaled(lr_mult))

    def forward(self, h: Tensor, early: Tensor | None = None) -> Tensor:
        energy = _log_energy(self.filters(h))  # (B, width)
        if self.early is not None:
            energy = torch.cat([energy, _log_energy(self.early(early))], dim=1)  # (B, 2 width)
        return F.softplus(self.mlp(energy).squeeze(1))  # (B,)

    @torch.no_grad()
    def start_at(self, value: float) -> None:
        """Make ``σ̂²`` start at ``value`` for every input: zero last weight, bias = softplus⁻¹(value)."""
        last = self.mlp[-1]
        last.weight = torch.zeros_like(last.weight)
        last.bias = torch.full_like(last.bias, float(torch.log(torch.expm1(torch.tensor(float(value))))))


def _filters(channels: int, width: int) -> nn.Sequential:
    """Two 3×3 convs ``channels -> width -> width`` with a SiLU between: the energy head's filter bank."""
    return nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1))


def _log_energy(maps: Tensor) -> Tensor:
    """``log(mean_{h,w} maps² + 1e-6)``: (B, K, h, w) -> (B, K)."""
    return maps.pow(2).mean(dim=(2, 3)).add(1e-6).log()


class SeverityEncoder(FolderSaved, nn.Module):
    """``y`` (B, 3, H, W) in [0,1] -> ``ẑ`` (B, C, h, w) in ``LatentDiffusion.encode`` units and ``σ̂²`` (B,).

    ``ẑ = scale * quant_conv(encoder(2y - 1))`` (for AutoencoderKL the first half of the moments, the posterior
    mean; for VQModel the unquantised latent); ``σ̂² = mean_{C,h,w} (W ẑ + b)²`` with one 1×1 conv (the paper's
    head). The head is stored as ``head_lr_mult * raw`` so that Adam moves it ``head_lr_mult`` times faster
    than the encoder at one learning rate (Adam's step is invariant to the gradient scale of ``raw``).
    """

    def __init__(self, encoder: nn.Module, quant_conv: nn.Module | None, *, autoencoder_class: str,
                 autoencoder_config: dict[str, Any], scale_factor: float, head_lr_mult: float = 10.0,
                 head_context: int = 0, head_stop_grad: bool = False, head_features: bool = False,
                 head_energy: int = 0, head_energy_early: bool = False) -> None:
        super().__init__()
        if autoencoder_class not in AUTOENCODERS:
            raise TypeError(f"severity encoder needs an autoencoder of class {sorted(AUTOENCODERS)}, "
                            f"got {autoencoder_class!r}")
        if not float(head_lr_mult) > 0.0:
            raise ValueError(f"head_lr_mult must be > 0, got {head_lr_mult}")
        self.encoder = encoder
        self.quant_conv = quant_conv if quant_conv is not None else nn.Identity()
        self.autoencoder_class = autoencoder_class
        self.autoencoder_config = dict(autoencoder_config)
        self.scale_factor = float(scale_factor)
        self.head_lr_mult = float(head_lr_mult)
        self.latent_channels = latent_channels(autoencoder_class, autoencoder_config)
        head = nn.Conv2d(self.latent_channels, self.latent_channels, 1)  # PyTorch default init, as the authors
        self.head_weight = nn.Parameter(head.weight.detach() / self.head_lr_mult)  # raw: W = mult * raw
        self.head_bias = nn.Parameter(head.bias.detach() / self.head_lr_mult)
        self.head_context = int(head_context)
        self.head_stop_grad = bool(head_stop_grad)  # option: σ̂² reads ẑ.detach(), so only the head fits σ̄²
        if self.head_context:  # option, not the paper's: a 3x3 context branch added to ẑ before the 1x1 head
            self.context = nn.Sequential(nn.Conv2d(self.latent_channels, self.head_context, 3, padding=1), nn.SiLU(),
                                         nn.Conv2d(self.head_context, self.latent_channels, 1))
            nn.init.zeros_(self.context[-1].weight)  # starts as the paper's head exactly
            nn.init.zeros_(self.context[-1].bias)
        self.head_features = bool(head_features)
        self.head_energy = int(head_energy)
        if self.head_energy < 0 or (self.head_energy and (self.head_context or self.head_features)):
            raise ValueError(f"train.head_energy={head_energy} must be >= 0 and replaces the 1x1 head, so it cannot be "
                             f"combined with head_context={head_context} or head_features={head_features}")
        self.head_energy_early = bool(head_energy_early)
        if self.head_energy_early and not self.head_energy:
            raise ValueError("train.head_energy_early=true adds a branch to the energy head: set train.head_energy > 0")
        self._features: Tensor | None = None
        self._early: Tensor | None = None
        width = self.encoder.conv_out.in_channels
        if self.head_features:  # option, not the paper: the 1x1 head also reads the encoder's last hidden features
            self.feature_weight = nn.Parameter(torch.zeros(self.latent_channels, width, 1, 1))  # starts as the paper's
        if self.head_energy:  # option, not the paper: σ̂² from a log-energy head on those features instead
            early = self.encoder.conv_in.out_channels if self.head_energy_early else 0
            self.energy_head = EnergyHead(width, self.head_energy, self.head_lr_mult, early=early)
            del self.head_weight, self.head_bias  # unused: no parameters that never get a gradient (DDP)
        if self.head_features or self.head_energy:
            self.encoder.conv_out.register_forward_pre_hook(self._keep_features)
        if self.head_energy_early:
            self.encoder.conv_in.register_forward_hook(self._keep_early)

    def _keep_features(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        """Forward pre-hook on ``encoder.conv_out``: keep its input, the features ``ẑ`` is computed from."""
        self._features = args[0]

    def _keep_early(self, module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        """Forward hook on ``encoder.conv_in``: keep its output, full-resolution features (``head_energy_early``)."""
        self._early = output

    @classmethod
    def from_latent_diffusion(cls, ldm: LatentDiffusion, head_lr_mult: float = 10.0, head_context: int = 0,
                              head_stop_grad: bool = False, head_features: bool = False,
                              head_energy: int = 0, head_energy_early: bool = False) -> SeverityEncoder:
        """A trainable deep copy of ``E0`` (encoder + quant_conv) of ``ldm``, so that before training ``ẑ = E0(y)``."""
        ae = ldm.autoencoder
        name = type(ae).__name__
        if name not in AUTOENCODERS:
            raise TypeError(f"severity encoder needs model.autoencoder of class {sorted(AUTOENCODERS)}, got {name}")
        config = {k: v for k, v in dict(ae.config).items() if not k.startswith("_")}
        config["scaling_factor"] = ldm.scale_factor  # informative only: ``scale_factor`` is what is applied
        model = cls(copy.deepcopy(ae.encoder), copy.deepcopy(ae.quant_conv), autoencoder_class=name,
                    autoencoder_config=config, scale_factor=ldm.scale_factor, head_lr_mult=head_lr_mult,
                    head_context=head_context, head_stop_grad=head_stop_grad, head_features=head_features,
                    head_energy=head_energy, head_energy_early=head_energy_early)
        return model.requires_grad_(True).train()

    def head(self, z: Tensor, features: Tensor | None = None) -> Tensor:
        """The σ head ``W ẑ + b`` (1×1 conv), (B, C, h, w) -> same.

        Options: ``head_context`` makes it ``W (ẑ + g(ẑ)) + b``; ``head_features`` adds ``V h`` with ``h``
        (B, F, h, w) the encoder features ``ẑ`` is computed from (input of ``conv_out``).
        """
        if self.head_context:
            z = z + self.context(z)
        out = F.conv2d(z, self.head_lr_mult * self.head_weight, self.head_lr_mult * self.head_bias)
        if self.head_features:
            out = out + F.conv2d(features, self.head_lr_mult * self.feature_weight)
        return out

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``Ê(y) = (ẑ, σ̂²)`` (paper eq. 2): (B, 3, H, W) in [0,1] -> (B, C, h, w), (B,)."""
        moments = self.quant_conv(self.encoder(2.0 * y - 1.0))
        z_hat = moments[:, : self.latent_channels] * self.scale_factor  # KL: posterior mean; VQ: unquantised
        features, self._features = self._features, None
        early, self._early = self._early, None
        if self.head_stop_grad:
            z_hat_in = z_hat.detach()
            features, early = (None if t is None else t.detach() for t in (features, early))
        else:
            z_hat_in = z_hat
        if self.head_energy:
            return z_hat, self.energy_head(features, early)
        sigma2_hat = self.head(z_hat_in, features).pow(2).mean(dim=(1, 2, 3))
        return z_hat, sigma2_hat

    @torch.no_grad()
    def init_head_scale(self, y: Tensor, v0: float) -> float:
        """Rescale the head so the batch mean of ``σ̂²(y)`` equals ``v0`` (data-dependent init); returns the factor.

        The energy head (option) instead starts at ``σ̂² = v0`` for every input (factor 1.0).
        """
        if self.head_energy:
            self.energy_head.start_at(v0)
            log.info("energy σ head starts at σ̂² = %.4g", v0)
            return 1.0
        current = self(y)[1].mean().item()
        if not current > 0.0 or not float(v0) > 0.0:
            raise ValueError(f"cannot rescale the σ head: mean σ̂² = {current}, target v0 = {v0} (both must be > 0)")
        factor = (float(v0) / current) ** 0.5
        self.head_weight.mul_(factor)
        self.head_bias.mul_(factor)
        if self.head_features:
            self.feature_weight.mul_(factor)
        log.info("σ head rescaled by %.4g: mean σ̂² %.4g -> %.4g", factor, current, v0)
        return factor

    def check_matches(self, ldm: LatentDiffusion) -> None:
        """Raise ValueError if ``ldm``'s latents are not in this encoder's units (class, channels, scale factor)."""
        name = type(ldm.autoencoder).__name__
        channels = latent_channels(name, dict(ldm.autoencoder.config)) if name in AUTOENCODERS else None
        if (name, channels) != (self.autoencoder_class, self.latent_channels) or not torch.isclose(
                torch.tensor(ldm.scale_factor), torch.tensor(self.scale_factor)):
            raise ValueError(f"severity encoder was built for {self.autoencoder_class} with {self.latent_channels} "
                             f"latent channels at scale {self.scale_factor:.6g}; the model has {name} with {channels} "
                             f"at scale {ldm.scale_factor:.6g}: train the encoder from this model")

    def config(self) -> dict[str, Any]:
        """The json-serialisable description that ``from_pretrained`` rebuilds the architecture from."""
        return {"_class_name": type(self).__name__, "autoencoder_class": self.autoencoder_class,
                "autoencoder_config": self.autoencoder_config, "scale_factor": self.scale_factor,
                "head_lr_mult": self.head_lr_mult, "latent_channels": self.latent_channels,
                "head_context": self.head_context, "head_stop_grad": self.head_stop_grad,
                "head_features": self.head_features, "head_energy": self.head_energy,
                "head_energy_early": self.head_energy_early}

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> SeverityEncoder:
        """Rebuild from ``config.json`` with diffusers ``from_config``, load the safetensors weights; eval mode."""
        config, weights = read_folder(folder, f"severity_encoder={folder}: no severity encoder there; train one with "
                                              "`python -m flashdiff.train train=severity_blur` (or `make toy-models`), "
                                              "or point severity_encoder at one")
        name = config["autoencoder_class"]
        if name not in AUTOENCODERS:
            raise TypeError(f"{Path(folder) / CONFIG_NAME}: unknown autoencoder_class {name!r}")
        ae = AUTOENCODERS[name].from_config(config["autoencoder_config"])
        model = cls(ae.encoder, ae.quant_conv, autoencoder_class=name, autoencoder_config=config["autoencoder_config"],
                    scale_factor=config["scale_factor"], head_lr_mult=config["head_lr_mult"],
                    head_context=config.get("head_context", 0), head_stop_grad=config.get("head_stop_grad", False),
                    head_features=config.get("head_features", False), head_energy=config.get("head_energy", 0),
                    head_energy_early=config.get("head_energy_early", False))
        model.load_state_dict(weights)
        log.info("loaded severity encoder (%s, scale %.4f) from %s", name, model.scale_factor, folder)
        return model.requires_grad_(False).eval()


def latent_channels(autoencoder_class: str, config: dict[str, Any]) -> int:
    """Channels C of ``ẑ``: ``latent_channels`` for AutoencoderKL, ``vq_embed_dim`` (or it) for VQModel."""
    if autoencoder_class == VQModel.__name__:
        return int(config.get("vq_embed_dim") or config["latent_channels"])
    return int(config["latent_channels"])


def error_variance(z_hat: Tensor, z0: Tensor) -> Tensor:
    """``σ̄²``: unbiased sample variance over the d entries of ``e = ẑ - z0`` (METHOD.md §2); (B, ...) -> (B,)."""
    return (z_hat - z0).flatten(1).var(dim=1, correction=1)


def severity_loss(z_hat: Tensor, sigma2_hat: Tensor, z0: Tensor, x_rec: Tensor, x0: Tensor, *,
                  lambda_sigma: float, lambda_im: float, detach_target: bool = False) -> dict[str, Tensor]:
    """``L = ||z0-ẑ||²/d + λσ (σ̄²-σ̂²)² + λim ||x0-D0(ẑ)||²/n`` (METHOD.md §2), each term a batch mean.

    ``z_hat``, ``z0`` (B, C, h, w); ``sigma2_hat`` (B,); ``x_rec = D0(ẑ)`` and ``x0`` (B, 3, H, W), both in
    [-1, 1] as the models see them. ``σ̄²`` is not detached by default (as the authors); ``detach_target`` makes
    it a pure target, so the variance term cannot move ẑ's error toward σ̂². Returns loss, latent, sigma, image.
    """
    latent = (z0 - z_hat).flatten(1).pow(2).mean(dim=1)  # (B,)
    target = error_variance(z_hat, z0)  # σ̄², (B,)
    sigma = ((target.detach() if detach_target else target) - sigma2_hat).pow(2)  # (B,)
    image = (x0 - x_rec).flatten(1).pow(2).mean(dim=1)  # (B,)
    loss = (latent + lambda_sigma * sigma + lambda_im * image).mean()
    return {"loss": loss, "latent": latent.mean(), "sigma": sigma.mean(), "image": image.mean()}


def ordering_accuracy(severity: Tensor, sigma2_hat: Tensor) -> Tensor:
    """OA (App. C, Def. 1, eq. 20): share of pairs i≠j with ``sign(s_i-s_j) = sign(σ̂_i-σ̂_j)``; (N, n) -> (N,).

    A tie in ``σ̂`` between different severities counts as wrong (sign 0 ≠ ±1), exactly as eq. 19.
    """
    if severity.shape != sigma2_hat.shape or severity.dim() != 2 or severity.shape[1] < 2:
        raise ValueError(f"severity and sigma2_hat must both be (N, n >= 2), got {tuple(severity.shape)} "
                         f"and {tuple(sigma2_hat.shape)}")
    n = severity.shape[1]
    s = torch.sign(severity[:, :, None] - severity[:, None, :])  # (N, n, n)
    p = torch.sign(sigma2_hat[:, :, None] - sigma2_hat[:, None, :])
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return ((s == p) & off_diagonal).sum(dim=(1, 2)).double() / (n * (n - 1))


def rankdata(x: Tensor) -> Tensor:
    """Ranks 1..n of a 1-D tensor, ties given their average rank (scipy's ``rankdata`` 'average'); (n,) -> (n,)."""
    values, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # last rank of each distinct value
    return (ends - (counts.double() - 1.0) / 2.0)[inverse]


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (n,): Pearson of the average ranks; NaN if one is constant."""
    if a.shape != b.shape or a.dim() != 1 or a.numel() < 2:
        raise ValueError(f"spearman needs two 1-D tensors of equal length >= 2, got {tuple(a.shape)}, {tuple(b.shape)}")
    ra, rb = rankdata(a.detach().cpu()), rankdata(b.detach().cpu())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.pow(2).sum() * rb.pow(2).sum()).sqrt()
    return float(ra @ rb / denom) if denom > 0 else float("nan")

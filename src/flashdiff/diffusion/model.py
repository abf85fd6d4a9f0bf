"""A thin latent-diffusion wrapper: autoencoder ``E0``/``D0`` with explicit scale (and shift) factors, and a denoiser
of any parameterisation (ε, v, x0, flow velocity) turned into the VP-equivalent ε̂ the solvers use (METHOD.md §3b)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel, VQModel
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from flashdiff.diffusion.schedule import Schedule, _bc, load_schedule

log = logging.getLogger(__name__)

AUTOENCODERS = {"AutoencoderKL": AutoencoderKL, "VQModel": VQModel}
PREDICTIONS = ("epsilon", "v_prediction", "sample", "flow")
"""What a denoiser predicts: ε; diffusers' ``v = a ε - b z0``; ``z0`` itself; the rectified-flow velocity
``u = dz_t/dt = ε - z0``."""


def eps_from_prediction(out: Tensor, z_t: Tensor, a: Tensor, b: Tensor, prediction_type: str) -> Tensor:
    """The noise ε̂ of ``z_t = a z0 + b ε`` from what the network predicted (METHOD.md §3b); out, z_t (B, C, h, w),
    a, b (B,) float64 (the model's own path coefficients). ε is the same noise in every parameterisation."""
    if prediction_type == "epsilon":
        return out
    if prediction_type == "v_prediction":  # a v + b z_t = (a² + b²) ε
        return (_bc(a, out) * out + _bc(b, z_t) * z_t) / _bc(a**2 + b**2, out)
    if prediction_type == "sample":
        return (z_t - _bc(a, out) * out) / _bc(b, out)
    if prediction_type == "flow":  # rectified flow (a = 1 - t, b = t): u = ε - z0, so a u + z_t = (a + b) ε
        return (_bc(a, out) * out + z_t) / _bc(a + b, out)
    raise ValueError(f"model.prediction_type must be one of {PREDICTIONS}, got {prediction_type!r}")


def _checkpointed_call(module: nn.Module, *args: Any) -> Any:
    """One block's forward under non-reentrant activation checkpointing (diffusers' default checkpoint function)."""
    return checkpoint(module.__call__, *args, use_reentrant=False)


def _checkpoint_blocks(decoder: nn.Module, enable: bool) -> None:
    """Block-wise checkpointing on or off in every submodule of ``decoder`` with diffusers' ``gradient_checkpointing``
    flag (the decoder's mid and up blocks), set as ``ModelMixin.enable_gradient_checkpointing`` sets it: VQModel does
    not expose that method."""
    for m in decoder.modules():
        if hasattr(m, "gradient_checkpointing"):
            m.gradient_checkpointing = enable
            m._gradient_checkpointing_func = _checkpointed_call


class LatentDiffusion(nn.Module):
    """``z = scale * E0(2x - 1)``, ``x = (D0(z / scale) + 1) / 2`` and ``eps_theta(z_i, i)``; images in [0, 1].

    The models see [-1, 1] (METHOD.md §1); callers pass and receive [0, 1] images. ``scale_factor`` is always
    explicit: the paper's VQ-f4 LDMs use 1.0, never diffusers' 0.18215 default.
    """

    def __init__(self, autoencoder: AutoencoderKL | VQModel, unet: nn.Module | None, scale_factor: float,
                 schedule: Schedule | None = None, *, prediction_type: str = "epsilon",
                 shift_factor: float = 0.0) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.unet = unet  # called as unet(z_t, time) -> .sample (diffusers) or a tensor, in the model's own space
        self.scale_factor = float(scale_factor)
        self.shift_factor = float(shift_factor)  # SD3 / Flux VAEs: z = scale (E(x) - shift)
        self.schedule = schedule if schedule is not None else Schedule.ldm()
        if prediction_type not in PREDICTIONS:
            raise ValueError(f"model.prediction_type must be one of {PREDICTIONS}, got {prediction_type!r}")
        if (prediction_type == "flow") != (self.schedule.path == "flow"):
            raise ValueError(f"a {prediction_type!r} denoiser needs a {'flow' if prediction_type == 'flow' else 'VP'} "
                             f"schedule, got a {self.schedule.path!r} one (model.prediction_type / the scheduler)")
        self.prediction_type = prediction_type
        self.checkpoint_decoder = False
        self.image_size: int | None = None  # the image side the latent shape follows; None = the AE's sample_size
        self._decode_fn = None  # a compiled decoder, where ``configure(compile=True)`` made one

    def configure(self, *, checkpoint_decoder: bool = False, checkpoint_unet: bool = False,
                  channels_last: bool = False, compile: bool = False) -> LatentDiffusion:
        """Memory and speed options for sampling (``memory.*``, ``compile``); none changes a result beyond float noise.
        The two checkpointing flags are set to the values given (on or off); ``channels_last`` and ``compile`` apply
        when true.

        ``checkpoint_unet``: diffusers' block-wise activation checkpointing of the UNet, so the guidance backward
        recomputes each block instead of keeping its activations; ``checkpoint_decoder``: the same for the decoder's
        mid and up blocks (diffusers' ``Decoder`` honours ``gradient_checkpointing``; checkpointing the decoder as a
        whole saved no peak memory, since its backward recomputes every activation at once);
        ``channels_last``: NHWC weights, faster convolutions on GPUs; ``compile``: ``torch.compile`` of the UNet and
        of the decoder (compiled on first use).
        """
        self.checkpoint_decoder = bool(checkpoint_decoder)
        if self.autoencoder is not None:  # none for a pixel model
            _checkpoint_blocks(self.autoencoder.decoder, self.checkpoint_decoder)
        if self.unet is not None:
            self.unet.enable_gradient_checkpointing() if checkpoint_unet else self.unet.disable_gradient_checkpointing()
        if channels_last:
            self.to(memory_format=torch.channels_last)
        if compile:
            if self.unet is not None:
                self.unet = torch.compile(self.unet)
            if self.autoencoder is not None:
                self._decode_fn = torch.compile(self.autoencoder.decode)
        return self

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one latent, for images of side ``image_size`` (else the autoencoder's ``sample_size``)."""
        ae = self.autoencoder
        f = 2 ** (len(ae.config.block_out_channels) - 1)
        size = self.image_size or ae.config.sample_size
        return ae.config.latent_channels, size // f, size // f

    def encode(self, x: Tensor) -> Tensor:
        """``z0 = E0(x)``: (B, 3, H, W) in [0,1] -> (B, C, h, w); the KL posterior mean, or VQ's unquantised latent."""
        h = 2.0 * x - 1.0
        if isinstance(self.autoencoder, VQModel):
            z = self.autoencoder.encode(h).latents
        else:
            z = self.autoencoder.encode(h).latent_dist.mode()
        return (z - self.shift_factor) * self.scale_factor

    def decode(self, z: Tensor) -> Tensor:
        """``x = D0(z)``: (B, C, h, w) -> (B, 3, H, W) in [0,1] (unclipped; VQ decoding quantises, straight-through)."""
        decode = self._decode_fn or self.autoencoder.decode
        return (decode(z / self.scale_factor + self.shift_factor).sample + 1.0) / 2.0

    def eps(self, z_i: Tensor, i: Tensor) -> Tensor:
        """``eps_theta(z_i, i)`` for per-sample steps ``i`` (B,); (B, C, h, w) -> (B, C, h, w).

        ``z_i`` is the VP-equivalent latent z̃ (METHOD.md §3b); the denoiser sees its own ``z_t = sqrt(a² + b²) z̃``
        and time, and what it predicts is converted to ε̂. An ε-predictor on a VP path is called as is.
        """
        if self.unet is None:
            raise RuntimeError("this LatentDiffusion has no score model (unet); load one with model.unet_subfolder")
        i = i.to(z_i.device)
        if self.prediction_type == "epsilon" and self.schedule.path == "vp":
            out = self.unet(z_i, i)
            return getattr(out, "sample", out)
        a, b = self.schedule.coefficients(i)
        z_t = _bc((a**2 + b**2).sqrt(), z_i) * z_i
        t = self.schedule.model_time(i)
        out = self.unet(z_t, t.float() if t.is_floating_point() else t)
        return eps_from_prediction(getattr(out, "sample", out), z_t, a, b, self.prediction_type)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, autoencoder_subfolder: str = "vae",
                        unet_subfolder: str | None = "unet", scale_factor: float | None = None,
                        autoencoder_class: str | None = None,
                        scheduler_subfolder: str | None = None,
                        autoencoder_path: str | Path | None = None,
                        flow_shift: float | None = None) -> LatentDiffusion:
        """Load any folder (or hub id) written by ``save_pretrained``: ``<path>/<autoencoder_subfolder>`` (+ unet).

        ``scale_factor=None`` reads ``scaling_factor`` from the autoencoder's own config.json and refuses to fall
        back on diffusers' default; ``shift_factor`` is read there too (0 where absent). With
        ``scheduler_subfolder`` the path, grid rule and prediction type come from that scheduler config
        (``load_schedule``); without, the paper's LDM schedule and an ε-predictor. ``autoencoder_path`` loads the
        autoencoder from another folder (a prior trained on another model's latents: ``model=toy_flow``);
        ``flow_shift`` samples a flow prior on another shift than its scheduler's (``Schedule.flow``).
        """
        from flashdiff.diffusion.hub import resolve_model_path

        subfolders = [s for s in (unet_subfolder, scheduler_subfolder) if s]
        if autoencoder_path is None:
            root = ae_root = resolve_model_path(str(path), [autoencoder_subfolder, *subfolders])
        else:
            root = resolve_model_path(str(path), subfolders)
            ae_root = resolve_model_path(str(autoencoder_path), [autoencoder_subfolder], "model.autoencoder_path")
        ae_dir = ae_root / autoencoder_subfolder
        ae_config = json.loads((ae_dir / "config.json").read_text())
        cls_name = autoencoder_class or ae_config.get("_class_name", "AutoencoderKL")
        if cls_name not in AUTOENCODERS:
            raise ValueError(f"model.autoencoder_class must be one of {sorted(AUTOENCODERS)}, got {cls_name!r}")
        if scale_factor is None:
            if "scaling_factor" not in ae_config:
                raise ValueError(f"{ae_dir / 'config.json'} has no scaling_factor: set model.scale_factor explicitly "
                                 "(1.0 for the paper's VQ-f4 LDMs)")
            scale_factor = ae_config["scaling_factor"]
        autoencoder = AUTOENCODERS[cls_name].from_pretrained(ae_dir)
        unet = UNet2DModel.from_pretrained(root / unet_subfolder) if unet_subfolder else None
        schedule, prediction = (load_schedule(root / scheduler_subfolder) if scheduler_subfolder
                                else (Schedule.ldm(), "epsilon"))
        if flow_shift is not None:
            if schedule.path != "flow":
                raise ValueError(f"model.flow_shift={flow_shift} applies to a flow prior; this one is {schedule.path}")
            schedule = Schedule.flow(schedule.num_steps, shift=float(flow_shift))
        model = cls(autoencoder, unet, scale_factor, schedule, prediction_type=prediction,
                    shift_factor=ae_config.get("shift_factor") or 0.0)
        model.requires_grad_(False).eval()
        log.debug("loaded %s (%s, scale %.4f) from %s", cls_name, "with unet" if unet else "no unet", scale_factor,
                 root)
        return model

    def save_pretrained(self, path: str | Path, *, autoencoder_subfolder: str = "vae") -> None:
        """Write ``<path>/<autoencoder_subfolder>`` and ``<path>/unet`` (safetensors); scale factor in the AE config."""
        path = Path(path)
        self.autoencoder.register_to_config(scaling_factor=self.scale_factor)
        if self.shift_factor:
            self.autoencoder.register_to_config(shift_factor=self.shift_factor)
        self.autoencoder.save_pretrained(path / autoencoder_subfolder, safe_serialization=True)
        if self.unet is not None:
            self.unet.save_pretrained(path / "unet", safe_serialization=True)


class PixelDiffusion(LatentDiffusion):
    """A pixel-space diffusion model behind the latent interface: ``z = 2x - 1`` (the identity autoencoder).

    Every latent solver then runs in pixel space; Latent-DPS on it is pixel DPS (Chung et al. 2023, App. A).
    ``scheduler`` is the diffusers DDPMScheduler the UNet was trained with (e.g. linear 1e-4 → 0.02).
    """

    def __init__(self, unet: UNet2DModel | None, scheduler: DDPMScheduler, sample_size: int,
                 channels: int = 3) -> None:
        super().__init__(None, unet, 1.0, Schedule.from_scheduler(scheduler))
        self.scheduler = scheduler
        self.sample_size, self.channels = int(sample_size), int(channels)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return self.channels, self.sample_size, self.sample_size

    def encode(self, x: Tensor) -> Tensor:
        """[0, 1] -> the model's [-1, 1]; (B, 3, H, W)."""
        return 2.0 * x - 1.0

    def decode(self, z: Tensor) -> Tensor:
        """[-1, 1] -> [0, 1] (unclipped); (B, 3, H, W)."""
        return (z + 1.0) / 2.0

    @classmethod
    def from_pretrained(cls, path: str | Path, *, unet_subfolder: str = "unet",
                        scheduler_subfolder: str = "scheduler") -> PixelDiffusion:
        """Load a diffusers DDPM pipeline folder or hub id (``unet/`` + ``scheduler/``, e.g.
        ``google/ddpm-ema-celebahq-256``, or one written by ``python -m flashdiff.train train=pixel_ddpm``)."""
        from flashdiff.diffusion.hub import resolve_model_path

        root = resolve_model_path(str(path), [scheduler_subfolder, unet_subfolder])
        scheduler = DDPMScheduler.from_pretrained(root / scheduler_subfolder)
        unet = UNet2DModel.from_pretrained(root / unet_subfolder)
        model = cls(unet, scheduler, unet.config.sample_size, unet.config.in_channels)
        model.requires_grad_(False).eval()
        log.debug("loaded pixel DDPM (%d steps, %d px) from %s", model.schedule.num_steps, model.sample_size, root)
        return model

"""Text-to-image priors as fixed-conditioning denoisers (METHOD.md §3b): Stable Diffusion 1.5 / 2.1 / XL (VP, ε or v)
and SD3 / Flux (rectified flow), each run with one conditioning per run, computed once from a prompt (the empty one
by default). A wrapper is ``forward(z_t, time) -> Tensor`` in the network's own space, as ``LatentDiffusion.eps``
calls any denoiser; classifier-free guidance is off unless ``cfg_scale != 1``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from torch import Tensor, nn

from flashdiff.diffusion.conditioning import text_conditioning
from flashdiff.diffusion.model import LatentDiffusion
from flashdiff.diffusion.schedule import Schedule

log = logging.getLogger(__name__)


class TextConditioned(nn.Module):
    """A text-conditional denoiser ``net`` with its conditioning fixed (buffers, expanded to the batch).

    ``cond`` / ``uncond``: keyword tensors (1, ...) of the network call for the prompt and for the empty prompt;
    ``cfg_scale`` s != 1 runs both in one batch of 2B and returns ``out_u + s (out_c - out_u)``.
    """

    def __init__(self, net: nn.Module, cond: dict[str, Tensor], uncond: dict[str, Tensor] | None = None,
                 cfg_scale: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.cfg_scale = float(cfg_scale)
        if self.cfg_scale != 1.0 and uncond is None:
            raise ValueError("classifier-free guidance (model.cfg_scale != 1) needs the unconditional embedding")
        self.keys = sorted(cond)
        for key in self.keys:
            self.register_buffer(f"cond_{key}", cond[key], persistent=False)
            if self.cfg_scale != 1.0:
                self.register_buffer(f"uncond_{key}", uncond[key], persistent=False)

    def conditioning(self, batch: int, dtype: torch.dtype) -> dict[str, Tensor]:
        """The call's keyword tensors for ``batch`` rows (2 x batch with CFG: unconditional rows first)."""
        out = {}
        for key in self.keys:
            rows = [getattr(self, f"cond_{key}")]
            if self.cfg_scale != 1.0:
                rows.insert(0, getattr(self, f"uncond_{key}"))
            out[key] = torch.cat([r.expand(batch, *r.shape[1:]) for r in rows]).to(dtype)
        return out

    def forward(self, z_t: Tensor, time: Tensor) -> Tensor:
        """The network's prediction at per-sample ``time`` (B,): (B, C, h, w) -> (B, C, h, w), in z_t's dtype."""
        dtype = next(self.net.parameters()).dtype
        cond = self.conditioning(z_t.shape[0], dtype)
        if self.cfg_scale == 1.0:
            return self.call(z_t.to(dtype), time, cond).to(z_t.dtype)
        out_u, out_c = self.call(torch.cat([z_t, z_t]).to(dtype), torch.cat([time, time]), cond).chunk(2)
        return (out_u + self.cfg_scale * (out_c - out_u)).to(z_t.dtype)  # classifier-free guidance

    def call(self, z: Tensor, time: Tensor, cond: dict[str, Tensor]) -> Tensor:
        """One network call on (N, C, h, w) at times (N,) with conditioning rows (N, ...); each family defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define call(z, time, cond): the family's network call")

    def enable_gradient_checkpointing(self) -> None:
        self.net.enable_gradient_checkpointing()

    def disable_gradient_checkpointing(self) -> None:
        self.net.disable_gradient_checkpointing()


class SDUNet(TextConditioned):
    """UNet2DConditionModel (SD 1.5, 2.1) on prompt embeddings ``encoder_hidden_states`` (1, 77, D), at step ``i``."""

    def call(self, z: Tensor, time: Tensor, cond: dict[str, Tensor]) -> Tensor:
        return self.net(z, time, encoder_hidden_states=cond["encoder_hidden_states"]).sample


class SDXLUNet(TextConditioned):
    """SDXL's UNet: + the pooled embedding ``text_embeds`` (1, 1280) and ``time_ids`` (1, 6) = (original size, crop
    corner, target size), from the image size."""

    def call(self, z: Tensor, time: Tensor, cond: dict[str, Tensor]) -> Tensor:
        added = {"text_embeds": cond["text_embeds"], "time_ids": cond["time_ids"]}
        return self.net(z, time, encoder_hidden_states=cond["encoder_hidden_states"], added_cond_kwargs=added).sample


class SD3Transformer(TextConditioned):
    """SD3Transformer2DModel on ``encoder_hidden_states`` (1, 77 + L, 4096) and ``pooled_projections`` (1, 2048);
    time ``1000 t`` as SD3's pipeline passes it."""

    def call(self, z: Tensor, time: Tensor, cond: dict[str, Tensor]) -> Tensor:
        return self.net(hidden_states=z, timestep=time, **cond).sample


class FluxTransformer(TextConditioned):
    """FluxTransformer2DModel on 2x2-packed latents (B, h/2 · w/2, 4C) with image / text position ids, time ``t``
    (the pipeline's ``timestep / 1000``) and, where the config has ``guidance_embeds`` (dev), the guidance embedding."""

    def __init__(self, net: nn.Module, cond: dict[str, Tensor], uncond: dict[str, Tensor] | None = None,
                 cfg_scale: float = 1.0, guidance: float | None = None) -> None:
        super().__init__(net, cond, uncond, cfg_scale)
        self.guidance = None if guidance is None else float(guidance)

    def call(self, z: Tensor, time: Tensor, cond: dict[str, Tensor]) -> Tensor:
        n, c, h, w = z.shape
        packed = pack(z)  # (N, h/2 · w/2, 4C)
        txt_ids = torch.zeros(cond["encoder_hidden_states"].shape[1], 3, device=z.device, dtype=z.dtype)
        guidance = None if self.guidance is None else torch.full((n,), self.guidance, device=z.device)
        out = self.net(hidden_states=packed, timestep=time.to(z.dtype) / 1000.0, guidance=guidance,
                       img_ids=image_ids(h // 2, w // 2, z.device, z.dtype), txt_ids=txt_ids, **cond).sample
        return unpack(out, c, h, w)


def pack(z: Tensor) -> Tensor:
    """Flux's 2x2 patches as tokens: (B, C, h, w) -> (B, h/2 · w/2, 4C) (diffusers' ``FluxPipeline._pack_latents``)."""
    b, c, h, w = z.shape
    return z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), 4 * c)


def unpack(x: Tensor, c: int, h: int, w: int) -> Tensor:
    """The inverse of ``pack``: (B, h/2 · w/2, 4C) -> (B, C, h, w)."""
    return x.view(x.shape[0], h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(x.shape[0], c, h, w)


def image_ids(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Flux's token positions (h · w, 3): (0, row, column) per packed token."""
    ids = torch.zeros(h, w, 3, device=device, dtype=dtype)
    ids[..., 1] += torch.arange(h, device=device, dtype=dtype)[:, None]
    ids[..., 2] += torch.arange(w, device=device, dtype=dtype)[None, :]
    return ids.reshape(h * w, 3)


DENOISERS = {"UNet2DConditionModel", "SD3Transformer2DModel", "FluxTransformer2DModel"}
WRAPPERS = {"sd": SDUNet, "sdxl": SDXLUNet, "sd3": SD3Transformer, "flux": FluxTransformer}
PATCH = {"sd": 1, "sdxl": 1, "sd3": 2, "flux": 2}  # latent pixels per token side: the image size is a multiple of f·p
FLUX_GUIDANCE = 3.5  # FluxPipeline's default guidance_scale (dev's guidance embedding)


def family_of(config: dict) -> str:
    """``sd`` | ``sdxl`` | ``sd3`` | ``flux`` from the denoiser's config.json."""
    name = config.get("_class_name")
    if name not in DENOISERS:
        raise ValueError(f"load_prior: unknown denoiser class {name!r}; one of {sorted(DENOISERS)}")
    if name == "UNet2DConditionModel":
        return "sdxl" if config.get("addition_embed_type") == "text_time" else "sd"
    return "sd3" if name == "SD3Transformer2DModel" else "flux"


def flow_shift(config: dict, image_size: int, f: int) -> float:
    """A flow scheduler's shift; with ``use_dynamic_shifting`` (Flux dev) ``exp(mu)``, mu linear in the number of
    image tokens (diffusers' ``calculate_shift``), which makes its exponential time shift this linear-in-σ one."""
    if not config.get("use_dynamic_shifting", False):
        return float(config.get("shift", 1.0))
    tokens = (image_size // f // 2) ** 2
    base, top = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    slope = (config.get("max_shift", 1.15) - config.get("base_shift", 0.5)) / (top - base)
    return math.exp(config.get("base_shift", 0.5) + slope * (tokens - base))


def prior_schedule(config: dict, image_size: int, f: int) -> tuple[Schedule, str]:
    """The schedule and prediction type a ``scheduler_config.json`` states, at ``image_size``: a DDPM-family scheduler
    (PNDM, DDIM, Euler, ...: its betas, grid rule and prediction type) or a flow-matching one (rectified flow)."""
    import diffusers

    scheduler = getattr(diffusers, config["_class_name"]).from_config(config)
    if not config["_class_name"].startswith("FlowMatch"):
        return Schedule.from_scheduler(scheduler, own_grid=True), config.get("prediction_type", "epsilon")
    return Schedule.flow(scheduler.config.num_train_timesteps, shift=flow_shift(config, image_size, f)), "flow"


def load_prior(path: str | Path, *, autoencoder_subfolder: str = "vae", unet_subfolder: str | None = "unet",
               scheduler_subfolder: str = "scheduler", prompt: str = "", cfg_scale: float = 1.0,
               guidance: float | None = None, image_size: int | None = None, max_sequence_length: int | None = None,
               cache_dir: str | Path | None = None, hub_id: str | None = None,
               dtype: str | None = None) -> LatentDiffusion:
    """A diffusers text-to-image snapshot (SD 1.5 / 2.1 / XL, SD3, Flux) as a LatentDiffusion on its own schedule.

    The family follows from the denoiser's config (``unet_subfolder``: ``unet`` or ``transformer``); the prompt
    conditioning is computed once with the snapshot's text encoder(s) and cached in ``cache_dir`` (the run folder);
    ``image_size`` (default: the VAE's ``sample_size``) sets the latent shape, SDXL's time ids and Flux dev's shift;
    ``guidance``: Flux dev's guidance embedding (3.5 when unset); ``dtype`` (``bfloat16`` / ``float16``) for the
    denoiser and text encoders. ``unet_subfolder=None`` loads the autoencoder only (what the trainers need).
    """
    from flashdiff.diffusion.hub import resolve_model_path

    folders = [s for s in (autoencoder_subfolder, unet_subfolder, unet_subfolder and scheduler_subfolder) if s]
    root = resolve_model_path(str(path), folders, hub_id=hub_id)
    base = LatentDiffusion.from_pretrained(root, autoencoder_subfolder=autoencoder_subfolder, unet_subfolder=None)
    ae = base.autoencoder.config
    f = 2 ** (len(ae.block_out_channels) - 1)
    size = int(image_size or ae.sample_size)
    if unet_subfolder is None:
        base.image_size = size
        return base
    config = json.loads((root / unet_subfolder / "config.json").read_text())
    family = family_of(config)
    if size % (f * PATCH[family]):
        raise ValueError(f"model.image_size={size} must be a multiple of {f * PATCH[family]} for this {family} prior")
    torch_dtype = getattr(torch, dtype) if dtype else None
    cond, uncond = text_conditioning(root, family, prompt, cfg=float(cfg_scale) != 1.0,
                                     max_sequence_length=max_sequence_length, cache_dir=cache_dir,
                                     dtype=torch_dtype, hub_id=hub_id)
    import diffusers

    net = getattr(diffusers, config["_class_name"]).from_pretrained(root / unet_subfolder, torch_dtype=torch_dtype)
    scheduler = json.loads((root / scheduler_subfolder / "scheduler_config.json").read_text())
    model = assemble(base, net, scheduler, cond, uncond, cfg_scale=cfg_scale, guidance=guidance, image_size=size)
    log.info("loaded %s prior %s (%s, %d px, prompt %r, cfg %.3g) from %s", family, config["_class_name"],
             model.prediction_type, size, prompt, cfg_scale, root)
    return model


def assemble(base: LatentDiffusion, net: nn.Module, scheduler: dict, cond: dict[str, Tensor],
             uncond: dict[str, Tensor] | None = None, *, cfg_scale: float = 1.0, guidance: float | None = None,
             image_size: int) -> LatentDiffusion:
    """``base``'s autoencoder with the denoiser ``net`` behind its family's wrapper, on the schedule its scheduler
    config states at ``image_size``; frozen, eval mode."""
    family = family_of({**net.config, "_class_name": type(net).__name__})
    extra = {}
    if family == "sdxl":  # SDXL's micro-conditioning: original size, crop corner (0, 0), target size
        ids = torch.tensor([[image_size, image_size, 0, 0, image_size, image_size]], dtype=torch.float32,
                           device=cond["encoder_hidden_states"].device)
        cond, uncond = cond | {"time_ids": ids}, uncond and uncond | {"time_ids": ids}
    if family == "flux" and net.config.get("guidance_embeds", False):
        extra["guidance"] = FLUX_GUIDANCE if guidance is None else float(guidance)
    denoiser = WRAPPERS[family](net, cond, uncond, cfg_scale, **extra)
    f = 2 ** (len(base.autoencoder.config.block_out_channels) - 1)
    schedule, prediction = prior_schedule(scheduler, image_size, f)
    model = LatentDiffusion(base.autoencoder, denoiser, base.scale_factor, schedule, prediction_type=prediction,
                            shift_factor=base.shift_factor)
    model.image_size = int(image_size)
    return model.requires_grad_(False).eval()

"""One fixed text conditioning per run (METHOD.md §3b): the snapshot's own text encoder(s) and tokenizer(s), loaded
through its diffusers pipeline class with every other component left out, encode the prompt once under no_grad
(the pipeline's ``encode_prompt``) and are dropped; the embeddings are cached as safetensors in the run folder and
reused on resume (the text encoders, and ``transformers``, are then not loaded at all)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from torch import Tensor

log = logging.getLogger(__name__)

PIPELINES = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline", "sd3": "StableDiffusion3Pipeline",
             "flux": "FluxPipeline"}
MAX_SEQUENCE_LENGTH = {"sd3": 256, "flux": 512}  # T5 tokens: the pipelines' defaults
Conditioning = dict[str, Tensor]


def cache_file(cache_dir: Path, root: Path, family: str, prompt: str, cfg: bool, max_sequence_length: int | None,
               dtype: torch.dtype | None) -> Path:
    """``<cache_dir>/conditioning/<family>-<hash>.safetensors``, keyed by snapshot, prompt and what is encoded."""
    key = json.dumps([str(Path(root).resolve()), family, prompt, cfg, max_sequence_length, str(dtype)])
    return Path(cache_dir) / "conditioning" / f"{family}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"


def text_conditioning(root: Path, family: str, prompt: str, *, cfg: bool = False,
                      max_sequence_length: int | None = None, cache_dir: str | Path | None = None,
                      dtype: torch.dtype | None = None,
                      hub_id: str | None = None) -> tuple[Conditioning, Conditioning | None]:
    """(cond, uncond): the denoiser's keyword tensors (1, ...) float32 for ``prompt`` and, with ``cfg``, for the
    empty prompt (SDXL: zeros, as its pipeline's ``force_zeros_for_empty_prompt``); from the cache where present."""
    seq = max_sequence_length or MAX_SEQUENCE_LENGTH.get(family)
    path = cache_file(Path(cache_dir), root, family, prompt, cfg, seq, dtype) if cache_dir else None
    if path is not None and path.exists():
        from safetensors.torch import load_file

        log.info("prompt conditioning from %s", path)
        return _split(load_file(path), cfg)
    cond, uncond = encode_prompt(root, family, prompt, cfg=cfg, max_sequence_length=seq, dtype=dtype, hub_id=hub_id)
    if path is not None:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"cond.{k}": v.contiguous() for k, v in cond.items()}
        tensors |= {f"uncond.{k}": v.contiguous() for k, v in (uncond or {}).items()}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file(tensors, tmp, metadata={"family": family, "prompt": prompt})
        tmp.replace(path)  # atomic: processes of one run may write it at once
    return cond, uncond


def _split(tensors: dict[str, Tensor], cfg: bool) -> tuple[Conditioning, Conditioning | None]:
    cond = {k[5:]: v for k, v in tensors.items() if k.startswith("cond.")}
    uncond = {k[7:]: v for k, v in tensors.items() if k.startswith("uncond.")}
    return cond, uncond if cfg else None


def text_components(root: Path) -> list[str]:
    """The snapshot's text encoder and tokenizer folders, as its ``model_index.json`` lists them."""
    index = json.loads((root / "model_index.json").read_text())
    return [k for k, v in index.items() if k.startswith(("text_encoder", "tokenizer")) and v and v[0] is not None]


@torch.no_grad()
def encode_prompt(root: Path, family: str, prompt: str, *, cfg: bool = False,
                  max_sequence_length: int | None = None, dtype: torch.dtype | None = None,
                  hub_id: str | None = None) -> tuple[Conditioning, Conditioning | None]:
    """Run the snapshot's text encoders once on ``prompt`` (and the empty prompt with ``cfg``), on the CPU or the
    first GPU, with its pipeline's own ``encode_prompt``; the encoders are freed on return."""
    import diffusers

    from flashdiff.diffusion.hub import ModelNotFoundError, how_to_get

    if not (root / "model_index.json").exists():
        raise ModelNotFoundError(f"model.path={root}: no model_index.json (the pipeline's component list, which "
                                 f"names its text encoders and tokenizers); {how_to_get(root, hub_id)}")
    index = json.loads((root / "model_index.json").read_text())
    wanted = text_components(root)
    missing = [c for c in wanted if not (root / c).is_dir()]
    if missing:
        raise ModelNotFoundError(f"model.path={root}: the folder lacks {missing} (the prompt's text encoders); "
                                 f"{how_to_get(root, hub_id)}")
    skip = {k: None for k, v in index.items() if not k.startswith("_") and k not in wanted}
    pipeline = getattr(diffusers, PIPELINES[family]).from_pretrained(root, torch_dtype=dtype, **skip)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipeline.to(device)
    cond, uncond = _encode(pipeline, family, prompt, cfg, max_sequence_length, device)
    del pipeline
    if device.type == "cuda":
        torch.cuda.empty_cache()
    log.info("encoded the prompt %r with %s", prompt, ", ".join(c for c in wanted if c.startswith("text_encoder")))
    return _float_cpu(cond), _float_cpu(uncond)


def _float_cpu(c: Conditioning | None) -> Conditioning | None:
    return None if c is None else {k: v.float().cpu() for k, v in c.items()}


def _encode(pipe, family: str, prompt: str, cfg: bool, seq: int | None,
            device: torch.device) -> tuple[Conditioning, Conditioning | None]:
    """The keyword tensors of the family's denoiser call, from its pipeline's ``encode_prompt``."""
    if family == "sd":
        cond, uncond = pipe.encode_prompt(prompt, device, 1, cfg)
        return {"encoder_hidden_states": cond}, ({"encoder_hidden_states": uncond} if cfg else None)
    if family == "sdxl":
        cond, uncond, pooled, pooled_u = pipe.encode_prompt(prompt, device=device, do_classifier_free_guidance=cfg)
        return ({"encoder_hidden_states": cond, "text_embeds": pooled},
                {"encoder_hidden_states": uncond, "text_embeds": pooled_u} if cfg else None)
    if family == "sd3":
        cond, uncond, pooled, pooled_u = pipe.encode_prompt(prompt, prompt, prompt, device=device,
                                                            do_classifier_free_guidance=cfg, max_sequence_length=seq)
        return ({"encoder_hidden_states": cond, "pooled_projections": pooled},
                {"encoder_hidden_states": uncond, "pooled_projections": pooled_u} if cfg else None)

    def flux(text: str) -> Conditioning:  # Flux has no negative prompt of its own: CFG's is the empty one
        embeds, pooled, _ = pipe.encode_prompt(text, text, device=device, max_sequence_length=seq)
        return {"encoder_hidden_states": embeds, "pooled_projections": pooled}

    return flux(prompt), (flux("") if cfg else None)

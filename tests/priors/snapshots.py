"""Tiny random-weight diffusers snapshots of every text-to-image family, written as the hub's are (model_index.json,
vae/, unet/ or transformer/, scheduler/, text_encoder*/, tokenizer*/), with the real scheduler configs. Tokenizers are
built here (a 56-token CLIP BPE vocabulary, a 30-piece T5 unigram): nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import torch

FAMILIES = ("sd15", "sd21_base", "sd21", "sdxl_base", "sd3_medium", "flux_dev", "flux_schnell")
IMAGE_SIZE = 32  # f = 8: 4x4 latents (SD3 / Flux: 2x2 tokens)
SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
            "trained_betas": None, "set_alpha_to_one": False, "steps_offset": 1, "clip_sample": False}
SCHEDULERS = {  # the real snapshots' scheduler_config.json (less version keys)
    "sd15": {"_class_name": "PNDMScheduler", **SD_BETAS, "skip_prk_steps": True},
    "sd21_base": {"_class_name": "PNDMScheduler", **SD_BETAS, "skip_prk_steps": True, "prediction_type": "epsilon"},
    "sd21": {"_class_name": "DDIMScheduler", **SD_BETAS, "prediction_type": "v_prediction"},
    "sdxl_base": {"_class_name": "EulerDiscreteScheduler", **SD_BETAS, "interpolation_type": "linear",
                  "prediction_type": "epsilon", "sample_max_value": 1.0, "skip_prk_steps": True,
                  "timestep_spacing": "leading", "use_karras_sigmas": False},
    "sd3_medium": {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0},
    "flux_dev": {"_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 256, "base_shift": 0.5,
                 "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 3.0,
                 "use_dynamic_shifting": True},
    "flux_schnell": {"_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 256, "base_shift": 0.5,
                     "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 1.0,
                     "use_dynamic_shifting": False},
}
VAE = {"block_out_channels": [8, 8, 8, 8], "down_block_types": ["DownEncoderBlock2D"] * 4, "layers_per_block": 1,
       "up_block_types": ["UpDecoderBlock2D"] * 4, "norm_num_groups": 4, "sample_size": IMAGE_SIZE}
FLOW_VAE = {"latent_channels": 16, "use_quant_conv": False, "use_post_quant_conv": False}
VAE_FACTORS = {"sd15": (0.18215, None), "sd21_base": (0.18215, None), "sd21": (0.18215, None),
               "sdxl_base": (0.13025, None), "sd3_medium": (1.5305, 0.0609), "flux_dev": (0.3611, 0.1159),
               "flux_schnell": (0.3611, 0.1159)}


def clip_tokenizer(folder: Path):
    """A CLIP BPE tokenizer over single letters (no merges), saved to ``folder``."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz!":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77,
                         pad_token="<|endoftext|>")


def t5_tokenizer():
    """A T5 unigram tokenizer over single letters."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in "abcdefghijklmnopqrstuvwxyz▁"]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def clip(hidden: int = 32, projection: bool = False, projection_dim: int = 32):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=56, hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, projection_dim=projection_dim,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_act="gelu")
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def t5(d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=30, d_model=d_model, d_ff=37, d_kv=8, num_layers=1, num_heads=4,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))


def vae(family: str):
    from diffusers import AutoencoderKL

    scale, shift = VAE_FACTORS[family]
    flow = family.startswith(("sd3", "flux"))
    return AutoencoderKL(**VAE, **(FLOW_VAE if flow else {}), scaling_factor=scale, shift_factor=shift)


def pipeline(family: str, tmp: Path):
    """The tiny pipeline object of ``family`` (random weights, seeded)."""
    import diffusers
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel

    torch.manual_seed(0)
    scheduler = getattr(diffusers, SCHEDULERS[family]["_class_name"]).from_config(SCHEDULERS[family])
    parts = {"vae": vae(family), "scheduler": scheduler, "tokenizer": clip_tokenizer(tmp / f"{family}_vocab")}
    unet = {"sample_size": IMAGE_SIZE // 8, "block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4,
            "attention_head_dim": 2}
    if family in ("sd15", "sd21_base", "sd21"):
        net = UNet2DConditionModel(**unet, cross_attention_dim=32, use_linear_projection=family != "sd15",
                                   down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
        return diffusers.StableDiffusionPipeline(**parts, unet=net, text_encoder=clip(), safety_checker=None,
                                                 feature_extractor=None, requires_safety_checker=False)
    if family == "sdxl_base":
        net = UNet2DConditionModel(**unet, cross_attention_dim=64, use_linear_projection=True,
                                   addition_embed_type="text_time", addition_time_embed_dim=8,
                                   projection_class_embeddings_input_dim=6 * 8 + 32,
                                   down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                   up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
        return diffusers.StableDiffusionXLPipeline(**parts, unet=net, text_encoder=clip(),
                                                   text_encoder_2=clip(projection=True), tokenizer_2=parts["tokenizer"])
    if family == "sd3_medium":  # CLIP-L + CLIP-G pooled (64), their token embeddings padded to T5's width (64)
        net = SD3Transformer2DModel(sample_size=IMAGE_SIZE // 8, patch_size=2, in_channels=16, num_layers=1,
                                    attention_head_dim=8, num_attention_heads=2, joint_attention_dim=64,
                                    caption_projection_dim=16, pooled_projection_dim=64, out_channels=16,
                                    pos_embed_max_size=8)
        return diffusers.StableDiffusion3Pipeline(**parts, transformer=net, text_encoder=clip(projection=True),
                                                  text_encoder_2=clip(projection=True), tokenizer_2=parts["tokenizer"],
                                                  text_encoder_3=t5(64), tokenizer_3=t5_tokenizer())
    net = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                 num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                                 guidance_embeds=family == "flux_dev", axes_dims_rope=(4, 6, 6))
    return diffusers.FluxPipeline(**parts, transformer=net, text_encoder=clip(), text_encoder_2=t5(32),
                                  tokenizer_2=t5_tokenizer())


def write_snapshot(family: str, folder: Path) -> Path:
    """``folder`` as ``hf download <hub id> --local-dir folder`` lays out the real one, with tiny random weights."""
    pipeline(family, folder.parent).save_pretrained(folder)
    return folder

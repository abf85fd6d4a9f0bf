"""The latent-diffusion UNet (``ldm.modules.diffusionmodules.openaimodel.UNetModel``) as a diffusers ``UNet2DModel``.

Original layout (``model.diffusion_model.`` stripped): ``time_embed.{0,2}``; ``input_blocks.0.0`` (input conv);
then per level ``num_res_blocks`` blocks ``input_blocks.k`` = ResBlock (+ AttentionBlock where the downsampling
factor ``ds`` is in ``attention_resolutions``) and, below the last level, a Downsample ``input_blocks.k.0.op``;
``middle_block.{0,1,2}`` = ResBlock, AttentionBlock, ResBlock; ``output_blocks`` per level from the smallest,
``num_res_blocks + 1`` each, the last of a level ending in an Upsample ``.conv``; ``out.{0,2}``. A ResBlock is
``in_layers.{0,2}``, ``emb_layers.1``, ``out_layers.{0,3}``, ``skip_connection``; an AttentionBlock ``norm``,
``qkv``, ``proj_out``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

from flashdiff.convert.mapping import ConversionError, Renamer

UNET_TARGET = "ldm.modules.diffusionmodules.openaimodel.UNetModel"
RESBLOCK = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj", "out_layers.0": "norm2",
            "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
# options of UNetModel with no UNet2DModel counterpart, and the only value each may take here
FIXED = {"dims": 2, "conv_resample": True, "num_classes": None, "use_scale_shift_norm": False,
         "resblock_updown": False, "use_new_attention_order": False, "use_spatial_transformer": False,
         "context_dim": None, "n_embed": None}


def attention_levels(params: dict[str, Any]) -> list[bool]:
    """Per level: whether its blocks carry attention (``ds = 2**level`` in ``attention_resolutions``)."""
    ds = set(int(a) for a in params["attention_resolutions"])
    return [2**level in ds for level in range(len(params["channel_mult"]))]


def unet_config(unet_config: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``UNet2DModel`` config for an ldm ``unet_config`` (``target`` + ``params``)."""
    if unet_config.get("target") != UNET_TARGET:
        raise ConversionError(f"unet_config.target is {unet_config.get('target')!r}; only {UNET_TARGET} is supported")
    p = unet_config["params"]
    wrong = {k: p[k] for k, v in FIXED.items() if k in p and p[k] != v}
    if int(p["channel_mult"][0]) != 1:
        wrong["channel_mult[0]"] = p["channel_mult"][0]
    if int(p.get("num_head_channels", -1)) <= 0:
        wrong["num_head_channels"] = p.get("num_head_channels", -1)
    if wrong:
        raise ConversionError(f"unet_config.params has {wrong}; UNet2DModel matches only {FIXED}, channel_mult[0] = 1 "
                              "and a fixed num_head_channels (the paper's LDMs)")
    levels = attention_levels(p)
    mc = int(p["model_channels"])
    return {"_class_name": "UNet2DModel", "sample_size": int(p["image_size"]), "in_channels": int(p["in_channels"]),
            "out_channels": int(p["out_channels"]), "block_out_channels": [mc * int(m) for m in p["channel_mult"]],
            "layers_per_block": int(p["num_res_blocks"]),
            "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in levels],
            "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels)],
            "attention_head_dim": int(p["num_head_channels"]), "norm_num_groups": 32, "norm_eps": 1e-5,
            "act_fn": "silu", "time_embedding_type": "positional", "flip_sin_to_cos": True, "freq_shift": 0,
            "downsample_padding": 1, "center_input_sample": False, "mid_block_scale_factor": 1,
            "resnet_time_scale_shift": "default", "add_attention": True}


def unet_state_dict(sd: dict[str, Tensor], params: dict[str, Any]) -> dict[str, Tensor]:
    """Original UNet weights (``model.diffusion_model.`` stripped) -> diffusers ``UNet2DModel`` names."""
    levels, blocks, d = attention_levels(params), int(params["num_res_blocks"]), int(params["num_head_channels"])
    r = Renamer(sd)
    r.module("time_embed.0", "time_embedding.linear_1")
    r.module("time_embed.2", "time_embedding.linear_2")
    r.module("input_blocks.0.0", "conv_in")
    k = 1
    for level, attn in enumerate(levels):
        for j in range(blocks):
            r.module(f"input_blocks.{k}.0", f"down_blocks.{level}.resnets.{j}", RESBLOCK)
            if attn:
                r.legacy_attention(f"input_blocks.{k}.1", f"down_blocks.{level}.attentions.{j}", d)
            k += 1
        if level != len(levels) - 1:
            r.module(f"input_blocks.{k}.0.op", f"down_blocks.{level}.downsamplers.0.conv")
            k += 1
    r.module("middle_block.0", "mid_block.resnets.0", RESBLOCK)
    r.legacy_attention("middle_block.1", "mid_block.attentions.0", d)
    r.module("middle_block.2", "mid_block.resnets.1", RESBLOCK)
    k = 0
    for up, level in enumerate(reversed(range(len(levels)))):
        for j in range(blocks + 1):
            r.module(f"output_blocks.{k}.0", f"up_blocks.{up}.resnets.{j}", RESBLOCK)
            if levels[level]:
                r.legacy_attention(f"output_blocks.{k}.1", f"up_blocks.{up}.attentions.{j}", d)
            if level and j == blocks:  # the level's last block upsamples: layer index after ResBlock (+ attention)
                r.module(f"output_blocks.{k}.{1 + levels[level]}.conv", f"up_blocks.{up}.upsamplers.0.conv")
            k += 1
    r.module("out.0", "conv_norm_out")
    r.module("out.2", "conv_out")
    return r.done("UNet")

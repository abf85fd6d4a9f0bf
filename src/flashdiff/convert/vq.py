"""The latent-diffusion / taming VQ first stage (``ldm.models.autoencoder.VQModel``) as a diffusers ``VQModel``.

Original layout (``first_stage_model.`` stripped): ``encoder.down.{i}.block.{j}``, ``encoder.down.{i}.downsample``,
``encoder.mid.{block_1,attn_1,block_2}``, ``encoder.norm_out``; the decoder's ``up.{i}`` is indexed by resolution
(0 = full size) and holds ``num_res_blocks + 1`` blocks; attention q/k/v/proj_out are 1×1 convolutions;
``quant_conv``, ``post_quant_conv`` and ``quantize.embedding`` keep their names. diffusers orders the decoder's
``up_blocks`` from the smallest resolution and uses linear attention projections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

from flashdiff.convert.mapping import ConversionError, Renamer

VQ_TARGETS = ("ldm.models.autoencoder.VQModel", "ldm.models.autoencoder.VQModelInterface")
RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def vq_config(first_stage_config: dict[str, Any], scale_factor: float = 1.0) -> dict[str, Any]:
    """diffusers ``VQModel`` config for an ldm ``first_stage_config`` (``target`` + ``params.ddconfig``)."""
    target = first_stage_config.get("target")
    if target not in VQ_TARGETS:
        raise ConversionError(f"first_stage_config.target is {target!r}; only the VQ first stages {VQ_TARGETS} "
                              "(the paper's VQ-f4) are supported")
    params = first_stage_config["params"]
    dd = params["ddconfig"]
    unsupported = {"double_z": bool(dd.get("double_z", True)), "attn_resolutions": list(dd.get("attn_resolutions", [])),
                   "attn_type": dd.get("attn_type", "vanilla"), "ch_mult[0]": list(dd["ch_mult"])[0],
                   "use_linear_attn": bool(dd.get("use_linear_attn", False))}
    allowed = {"double_z": False, "attn_resolutions": [], "attn_type": "vanilla", "ch_mult[0]": 1,
               "use_linear_attn": False}
    wrong = {k: v for k, v in unsupported.items() if v != allowed[k]}
    if wrong:
        raise ConversionError(f"first_stage_config.params.ddconfig has {wrong}; diffusers' VQModel matches only "
                              f"{allowed} (as VQ-f4)")
    n = len(dd["ch_mult"])
    embed_dim = int(params["embed_dim"])
    return {"_class_name": "VQModel", "in_channels": int(dd["in_channels"]), "out_channels": int(dd["out_ch"]),
            "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
            "block_out_channels": [int(dd["ch"]) * int(m) for m in dd["ch_mult"]],
            "layers_per_block": int(dd["num_res_blocks"]), "act_fn": "silu", "latent_channels": int(dd["z_channels"]),
            "sample_size": int(dd["resolution"]), "num_vq_embeddings": int(params["n_embed"]),
            "norm_num_groups": 32, "vq_embed_dim": None if embed_dim == int(dd["z_channels"]) else embed_dim,
            "scaling_factor": float(scale_factor)}


def _coder(r: Renamer, part: str, n: int, blocks: int) -> None:
    """Rename ``encoder`` (``blocks`` resnets per level) or ``decoder`` (``blocks + 1``) of ``n`` levels."""
    r.module(f"{part}.conv_in", f"{part}.conv_in")
    r.module(f"{part}.mid.block_1", f"{part}.mid_block.resnets.0", RESNET)
    r.module(f"{part}.mid.attn_1", f"{part}.mid_block.attentions.0", ATTENTION, squeeze=True)
    r.module(f"{part}.mid.block_2", f"{part}.mid_block.resnets.1", RESNET)
    for i in range(n):
        if part == "encoder":
            for j in range(blocks):
                r.module(f"encoder.down.{i}.block.{j}", f"encoder.down_blocks.{i}.resnets.{j}", RESNET)
            if i != n - 1:
                r.module(f"encoder.down.{i}.downsample.conv", f"encoder.down_blocks.{i}.downsamplers.0.conv")
        else:
            k = n - 1 - i  # diffusers counts decoder levels from the smallest resolution
            for j in range(blocks + 1):
                r.module(f"decoder.up.{i}.block.{j}", f"decoder.up_blocks.{k}.resnets.{j}", RESNET)
            if i != 0:
                r.module(f"decoder.up.{i}.upsample.conv", f"decoder.up_blocks.{k}.upsamplers.0.conv")
    r.module(f"{part}.norm_out", f"{part}.conv_norm_out")
    r.module(f"{part}.conv_out", f"{part}.conv_out")


def vq_state_dict(sd: dict[str, Tensor], config: dict[str, Any], *, encoder_only: bool = False) -> dict[str, Tensor]:
    """Original first-stage weights (prefix stripped) -> diffusers ``VQModel`` names for ``config``.

    ``encoder_only`` takes ``encoder.*`` and ``quant_conv`` only (a severity encoder's backbone). Every source
    key must be used; raises ConversionError naming the ones left over.
    """
    n, blocks = len(config["block_out_channels"]), int(config["layers_per_block"])
    r = Renamer(sd)
    _coder(r, "encoder", n, blocks)
    r.module("quant_conv", "quant_conv")
    if not encoder_only:
        _coder(r, "decoder", n, blocks)
        r.module("post_quant_conv", "post_quant_conv")
        r.module("quantize.embedding", "quantize.embedding")
    return r.done("first stage (VQ)")

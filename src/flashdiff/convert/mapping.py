"""Moving weights from an original checkpoint's names to diffusers' names, one module at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


class ConversionError(ValueError):
    """An original checkpoint or config that the converter cannot map onto the diffusers architecture."""


class Renamer:
    """Pops weights out of ``sd`` (original names) into ``out`` (diffusers names); ``done`` reports leftovers."""

    def __init__(self, sd: Mapping[str, Tensor]) -> None:
        self.src = dict(sd)
        self.out: dict[str, Tensor] = {}

    def module(self, src: str, dst: str, children: Mapping[str, str] | None = None, *, squeeze: bool = False) -> None:
        """Move ``src[.child].{weight,bias}`` to ``dst[.children[child]].{weight,bias}`` where present.

        ``squeeze`` turns 1×1 convolution kernels (C_out, C_in, 1[, 1]) into linear weights (C_out, C_in).
        """
        for a, b in (children or {"": ""}).items():
            s, d = (f"{src}.{a}" if a else src), (f"{dst}.{b}" if b else dst)
            for p in ("weight", "bias"):
                t = self.src.pop(f"{s}.{p}", None)
                if t is not None:
                    self.out[f"{d}.{p}"] = t.flatten(1) if squeeze and t.dim() > 2 else t

    def legacy_attention(self, src: str, dst: str, head_channels: int) -> None:
        """openaimodel ``AttentionBlock`` (legacy order) -> diffusers ``Attention``.

        Its ``qkv`` 1-D conv (3C, C, 1) stacks, head by head, the head's q, k and v rows (``QKVAttentionLegacy``
        reshapes to (heads, 3·d, T) before splitting); diffusers keeps one (C, C) projection each, heads contiguous.
        """
        w, b = self.src.pop(f"{src}.qkv.weight", None), self.src.pop(f"{src}.qkv.bias", None)
        if w is None or b is None:
            raise ConversionError(f"{src}.qkv: not in the checkpoint; the checkpoint does not match its config "
                                  "(num_res_blocks, channel_mult, attention_resolutions)")
        c = w.shape[1]
        if c % head_channels:
            raise ConversionError(f"{src}: {c} channels are not a multiple of num_head_channels={head_channels}")
        heads = c // head_channels
        w = w.reshape(heads, 3, head_channels, c)  # (heads, q|k|v, d, C)
        b = b.reshape(heads, 3, head_channels)
        for k, name in enumerate(("to_q", "to_k", "to_v")):
            self.out[f"{dst}.{name}.weight"] = w[:, k].reshape(c, c)
            self.out[f"{dst}.{name}.bias"] = b[:, k].reshape(c)
        self.module(src, dst, {"norm": "group_norm", "proj_out": "to_out.0"}, squeeze=True)

    def done(self, what: str) -> dict[str, Tensor]:
        """The renamed weights; ConversionError if any source weight found no place."""
        if self.src:
            left = sorted(self.src)
            raise ConversionError(f"{what}: {len(left)} checkpoint weights have no place in the diffusers model, e.g. "
                                  f"{left[:6]}; the checkpoint does not match its config")
        return self.out

"""A small, independent re-implementation of the ORIGINAL architectures, for building test checkpoints.

Written from the documented layouts (reference_impl.md §1.1, §8; latent-diffusion's ``openaimodel.UNetModel`` and
the taming/ldm ``Encoder``/``Decoder``/``VQModel``): module attribute names are the original ones, so that
``state_dict()`` yields the original checkpoint keys, and ``forward`` is the reference computation the converted
diffusers models must reproduce. It shares no code with ``flashdiff.convert``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------- first stage (taming / ldm VQ autoencoder)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1×1-conv projections."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q, k, v = (m(h).reshape(b, c, hh * ww) for m in (self.q, self.k, self.v))
        w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c), dim=-1)  # (B, T, T)
        return x + self.proj_out(torch.einsum("bij,bcj->bci", w, v).reshape(b, c, hh, ww))


class Downsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric padding


class Upsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid(c: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.attn_1, mid.block_2 = ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)
    return mid


class Encoder(nn.Module):
    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, in_channels: int, z_channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for level, m in enumerate(ch_mult):
            down = nn.Module()
            down.block = nn.ModuleList()
            for _ in range(num_res_blocks):
                down.block.append(ResnetBlock(cin, ch * m))
                cin = ch * m
            down.attn = nn.ModuleList()
            if level != len(ch_mult) - 1:
                down.downsample = Downsample(cin)
            self.down.append(down)
        self.mid = _mid(cin)
        self.norm_out, self.conv_out = _norm(cin), nn.Conv2d(cin, z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for down in self.down:
            for block in down.block:
                h = block(h)
            if hasattr(down, "downsample"):
                h = down.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, out_ch: int, z_channels: int) -> None:
        super().__init__()
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, cin, 3, padding=1)
        self.mid = _mid(cin)
        ups = []
        for level in reversed(range(len(ch_mult))):  # built from the smallest resolution, stored by resolution
            up = nn.Module()
            up.block = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                up.block.append(ResnetBlock(cin, ch * ch_mult[level]))
                cin = ch * ch_mult[level]
            up.attn = nn.ModuleList()
            if level != 0:
                up.upsample = Upsample(cin)
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)
        self.norm_out, self.conv_out = _norm(cin), nn.Conv2d(cin, out_ch, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for up in reversed(self.up):
            for block in up.block:
                h = block(h)
            if hasattr(up, "upsample"):
                h = up.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VQFirstStage(nn.Module):
    """``encode`` = quant_conv(encoder(x)) (unquantised); ``decode`` quantises to the nearest codebook entry."""

    def __init__(self, dd: dict, embed_dim: int, n_embed: int) -> None:
        super().__init__()
        self.encoder = Encoder(dd["ch"], dd["ch_mult"], dd["num_res_blocks"], dd["in_channels"], dd["z_channels"])
        self.decoder = Decoder(dd["ch"], dd["ch_mult"], dd["num_res_blocks"], dd["out_ch"], dd["z_channels"])
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(n_embed, embed_dim)
        self.quantize.embedding.weight.data.uniform_(-1.0, 1.0)
        self.quant_conv = nn.Conv2d(dd["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, dd["z_channels"], 1)

    def encode(self, x: Tensor) -> Tensor:
        return self.quant_conv(self.encoder(x))

    def decode(self, h: Tensor) -> Tensor:
        codes = self.quantize.embedding.weight  # (K, C)
        flat = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        nearest = torch.cdist(flat, codes).argmin(dim=1)
        q = codes[nearest].reshape(h.shape[0], h.shape[2], h.shape[3], -1).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(q))


class SevEncoder(nn.Module):
    """The authors' ``LDMSevEncoder``: ``ẑ = quant_conv(encoder(y))``, ``σ̂² = mean std_conv(ẑ)²``; y in [-1, 1]."""

    def __init__(self, dd: dict, embed_dim: int) -> None:
        super().__init__()
        self.encoder = Encoder(dd["ch"], dd["ch_mult"], dd["num_res_blocks"], dd["in_channels"], dd["z_channels"])
        self.quant_conv = nn.Conv2d(dd["z_channels"], embed_dim, 1)
        self.std_conv = nn.Conv2d(dd["z_channels"], embed_dim, 1)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.quant_conv(self.encoder(y))
        return mean, self.std_conv(mean).pow(2).flatten(1).mean(dim=1)


# ---------------------------------------------------------------- score model (openaimodel.UNetModel)


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c)  # eps 1e-5


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """[cos, sin] of t times frequencies exp(-ln(1e4) i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, emb: int, cout: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(_gn(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, cout))
        self.out_layers = nn.Sequential(_gn(cout), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Multi-head attention with one fused 1-D conv ``qkv``, split per head first (the legacy order)."""

    def __init__(self, c: int, head_channels: int) -> None:
        super().__init__()
        self.heads, self.d = c // head_channels, head_channels
        self.norm, self.qkv, self.proj_out = _gn(c), nn.Conv1d(c, 3 * c, 1), nn.Conv1d(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        flat = x.reshape(b, c, hh * ww)
        qkv = self.qkv(self.norm(flat)).reshape(b * self.heads, 3 * self.d, hh * ww)
        q, k, v = qkv.split(self.d, dim=1)
        w = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(self.d), dim=-1)
        a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, hh * ww)
        return (flat + self.proj_out(a)).reshape(b, c, hh, ww)


class Seq(nn.Sequential):
    """Runs its layers in order, handing the time embedding to the ResBlocks."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class DownOp(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class UNetModel(nn.Module):
    def __init__(self, in_channels: int, model_channels: int, out_channels: int, num_res_blocks: int,
                 attention_resolutions: list[int], channel_mult: list[int], num_head_channels: int,
                 **_: object) -> None:
        super().__init__()
        mc, emb = model_channels, 4 * model_channels
        self.mc = mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.input_blocks = nn.ModuleList([Seq(nn.Conv2d(in_channels, mc, 3, padding=1))])
        chans, ch, ds = [mc], mc, 1
        for level, m in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, emb, m * mc)]
                ch = m * mc
                if ds in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_head_channels))
                self.input_blocks.append(Seq(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(Seq(DownOp(ch)))
                chans.append(ch)
                ds *= 2
        self.middle_block = Seq(ResBlock(ch, emb, ch), AttentionBlock(ch, num_head_channels), ResBlock(ch, emb, ch))
        self.output_blocks = nn.ModuleList()
        for level, m in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), emb, m * mc)]
                ch = m * mc
                if ds in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_head_channels))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Seq(*layers))
        self.out = nn.Sequential(_gn(ch), nn.SiLU(), nn.Conv2d(mc, out_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time_embed(timestep_embedding(t, self.mc))
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def ldm_betas(start: float = 0.0015, end: float = 0.0195, n: int = 1000) -> Tensor:
    """ldm's "linear" schedule: betas = linspace(sqrt(start), sqrt(end), n)**2 (float64)."""
    return torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2

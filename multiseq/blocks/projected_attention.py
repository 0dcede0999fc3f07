"""Attention through a short sequence: Linformer (`linformer`), Luna (`luna`), Perceiver-style latents
(`perceiver`). Time and memory O(L * r) for r projected positions.

* `linformer` (Wang et al., 2020): keys and values projected along the sequence, `K' = E K`, `V' = F V` with
  learned E, F of shape (rank, max_length) shared by the heads; padded rows are zeroed before projecting. Initial
  projections are Gaussian (`random`) or segment means (`pool`, which equals the identity at full rank).
  Bidirectional only, as in the paper.
* `luna` (Ma et al., 2021): pack `P' = Attn(P, X)` with a packed sequence P of `packed` rows (learned for the first
  layer, carried from the previous Luna layer afterwards), unpack `Y = Attn(X, P')`; the next layer receives
  `LayerNorm(P + P')`. Bidirectional only.
* `perceiver`: `latents` learned vectors cross-attend to the input, self-attend among themselves, and the input
  reads them back with a cross-attention, so every position gets an output, linear in L. Causal (Perceiver AR):
  the last `latents` positions are the latent queries (j <= i), self-attend causally, and only they get an output
  (earlier positions pass through the residual unchanged).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseq.blocks.attention import CrossAttention, MultiHeadBlock
from multiseq.blocks.registry import register_block
from multiseq.errors import ConfigError, InputError


@register_block("linformer")
class Linformer(MultiHeadBlock):
    """Linformer attention with keys/values projected to `rank` positions; inputs up to `max_length`."""

    def __init__(
        self, dim: int, *, rank: int = 64, max_length: int = 4096, projection_init: str = "random", **kwargs: Any
    ) -> None:
        if kwargs.get("causal"):
            raise ConfigError("linformer has no causal variant (its projections mix all positions)")
        super().__init__(dim, **kwargs)
        if projection_init not in ("random", "pool"):
            raise ConfigError(f"projection_init must be 'random' or 'pool', got {projection_init!r}")
        self.rank, self.max_length = rank, max_length
        f = dict(device=kwargs.get("device"), dtype=kwargs.get("dtype"))
        if projection_init == "pool":
            init = self.pool_matrix(rank, max_length)
        else:
            init = torch.randn(rank, max_length) / rank**0.5
        self.E = nn.Parameter(init.clone().to(**f))
        self.F = nn.Parameter(init.clone().to(**f))

    @staticmethod
    def pool_matrix(rank: int, length: int) -> Tensor:
        """(rank, length) segment-mean matrix: row r averages positions [r*length/rank, (r+1)*length/rank)."""
        seg = torch.arange(length) * rank // length
        P = (seg[None, :] == torch.arange(rank)[:, None]).float()
        return P / P.sum(1, keepdim=True).clamp_min(1)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        L = q.shape[2]
        if L > self.max_length:
            raise InputError(f"linformer was built for max_length={self.max_length}, got a sequence of {L}")
        if mask is not None:
            k = k * mask[:, None, :, None].to(k.dtype)
            v = v * mask[:, None, :, None].to(v.dtype)
        kp = torch.einsum("rl,bhld->bhrd", self.E[:, :L].to(k.dtype), k)
        vp = torch.einsum("rl,bhld->bhrd", self.F[:, :L].to(v.dtype), v)
        return F.scaled_dot_product_attention(q, kp, vp)


@register_block("luna")
class Luna(nn.Module):
    """Luna: pack into `packed` rows, unpack back; the packed sequence is carried to the next Luna layer."""

    uses_carry = True
    handles_empty = True  # runs on empty input so that the carried packed sequence still reaches the next layer

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 8,
        packed: int = 16,
        causal: bool = False,
        dropout: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if causal:
            raise ConfigError("this luna block is bidirectional (the causal variant needs cumulative packing)")
        f = dict(device=device, dtype=dtype)
        self.p0 = nn.Parameter(torch.randn(packed, dim, **f) * dim**-0.5)
        self.pack = CrossAttention(dim, heads, **f)
        self.unpack = CrossAttention(dim, heads, **f)
        self.p_norm = nn.LayerNorm(dim, **f)
        self.drop = nn.Dropout(dropout)

    def set_carry_role(self, first: bool, last: bool) -> None:
        """Called by the backbone: only the first Luna layer owns the learned initial packed sequence, and the last
        one passes nothing on."""
        if not first:
            self.p0 = None
        if last:
            self.p_norm = None

    def forward(self, x: Tensor, mask: Tensor | None = None, carry: dict | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) -> (B, L, D). `carry["luna_p"]`: (B, packed, D) from the previous layer."""
        B = x.shape[0]
        p = carry.get("luna_p") if carry is not None else None
        if p is None:
            if self.p0 is None:
                raise RuntimeError("this Luna layer expects the packed sequence of a previous Luna layer")
            p = self.p0.expand(B, -1, -1).to(x.dtype)
        packed = self.pack(p, x, mask)  # (B, packed, D)
        y = self.unpack(x, packed, None)  # (B, L, D)
        if carry is not None and self.p_norm is not None:
            carry["luna_p"] = self.p_norm(p + packed)
        return self.drop(y)


@register_block("perceiver")
class Perceiver(nn.Module):
    """Latent bottleneck: `latents` latent vectors cross-attend to the input, then self-attend; the input reads
    them back (bidirectional). Causal: Perceiver AR over the last `latents` positions."""

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 8,
        latents: int = 32,
        causal: bool = False,
        dropout: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        f = dict(device=device, dtype=dtype)
        self.causal, self.n_latents = causal, latents
        if not causal:
            self.latents = nn.Parameter(torch.randn(latents, dim, **f) * dim**-0.5)
            self.read = CrossAttention(dim, heads, **f)
        self.cross = CrossAttention(dim, heads, **f)
        self.self_attn = CrossAttention(dim, heads, **f)
        self.norm = nn.LayerNorm(dim, **f)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        B, L, D = x.shape
        if self.causal:
            n = min(self.n_latents, L)
            lat_q = x[:, L - n :]
            # Latent i (position L-n+i) sees inputs j <= L-n+i: a causal mask shifted by L-n.
            allowed = torch.arange(L, device=x.device)[None, :] <= (L - n + torch.arange(n, device=x.device))[:, None]
            kpm = mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=x.device)
            q = self.cross.split(self.cross.q(lat_q))
            k, v = (self.cross.split(t) for t in self.cross.kv(x).chunk(2, dim=-1))
            am = allowed[None, None] & kpm[:, None, None, :]
            any_key = am.any(-1, keepdim=True)
            lat = F.scaled_dot_product_attention(q, k, v, attn_mask=am | ~any_key) * any_key.to(q.dtype)
            lat = lat_q + self.cross.merge(lat)
            lat_mask = kpm[:, L - n :]
            lat = lat + self.self_attn(self.norm(lat), self.norm(lat), lat_mask, causal=True)
            out = torch.zeros_like(x)
            out[:, L - n :] = lat - lat_q
            return self.drop(out)
        lat = self.latents.expand(B, -1, -1).to(x.dtype)
        lat = lat + self.cross(lat, x, mask)
        h = self.norm(lat)
        lat = lat + self.self_attn(h, h, None)
        return self.drop(self.read(x, lat, None))

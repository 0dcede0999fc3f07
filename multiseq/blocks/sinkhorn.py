"""Sinkhorn Transformer (Tay et al., 2020): learned block sorting, registered as `sinkhorn`.

The sequence is cut into blocks of `block` tokens. A sorting network scores block pairs from the blocks' mean
features; `iterations` rounds of Sinkhorn normalisation in log space (temperature `temperature`) make the scores a
doubly stochastic matrix P; each block's keys and values are replaced by the P-weighted mixture of blocks
("sorted" blocks). Every query block attends to its own block and to its sorted block in one softmax.
Blocks made only of padding are kept out of the sorting, so padding never changes real outputs. Bidirectional.
Memory O(L * block + (L / block)^2).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.attention import MultiHeadBlock
from multiseq.blocks.registry import register_block
from multiseq.errors import ConfigError


def sinkhorn(log_p: Tensor, iterations: int) -> Tensor:
    """Alternate row and column normalisation of `exp(log_p)` (..., n, n) in log space; returns log of the result."""
    for _ in range(iterations):
        log_p = log_p - torch.logsumexp(log_p, dim=-1, keepdim=True)
        log_p = log_p - torch.logsumexp(log_p, dim=-2, keepdim=True)
    return log_p


@register_block("sinkhorn")
class SinkhornAttention(MultiHeadBlock):
    """Sparse Sinkhorn attention with blocks of `block` tokens."""

    def __init__(
        self, dim: int, *, block: int = 32, iterations: int = 8, temperature: float = 0.75, **kwargs: Any
    ) -> None:
        if kwargs.get("causal"):
            raise ConfigError("this sinkhorn block is bidirectional (causal sorting needs the SortCut variant)")
        super().__init__(dim, **kwargs)
        f = dict(device=kwargs.get("device"), dtype=kwargs.get("dtype"))
        self.block, self.iterations, self.temperature = block, iterations, temperature
        hd = dim // self.heads
        # No output bias: a column-constant score is removed by the column normalisation anyway.
        self.sort_net = nn.Sequential(nn.Linear(hd, hd, **f), nn.ReLU(), nn.Linear(hd, hd, bias=False, **f))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        B, H, L, d = q.shape
        c = self.block  # fixed, so that padding never changes the blocks
        pad = (-L) % c
        kpm = mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=q.device)
        m = F.pad(kpm, (0, pad), value=False)
        qb, kb, vb = (rearrange(F.pad(t, (0, 0, 0, pad)), "b h (n c) d -> b h n c d", c=c) for t in (q, k, v))
        mb = rearrange(m, "b (n c) -> b n c", c=c)  # (B, n, c)
        n = mb.shape[1]
        kb = kb * mb[:, None, :, :, None].to(kb.dtype)
        vb = vb * mb[:, None, :, :, None].to(vb.dtype)
        real_block = mb.any(-1)  # (B, n)
        summary = kb.sum(3) / mb.sum(-1).clamp_min(1)[:, None, :, None].to(kb.dtype)  # (B, H, n, d)
        s = self.sort_net(summary)
        logits = torch.einsum("bhid,bhjd->bhij", s, summary) / (d**0.5 * self.temperature)
        # Padding-only blocks sort to themselves and never mix with real ones.
        pair_ok = real_block[:, None, :, None] & real_block[:, None, None, :]
        eye = torch.eye(n, dtype=torch.bool, device=q.device)
        logits = logits.float().masked_fill(~pair_ok, float("-inf")).masked_fill(~pair_ok & eye, 0.0)
        P = sinkhorn(logits, self.iterations).exp().to(q.dtype)  # (B, H, n, n)
        sk = torch.einsum("bhij,bhjcd->bhicd", P, kb)
        sv = torch.einsum("bhij,bhjcd->bhicd", P, vb)
        keys = torch.cat([kb, sk], dim=3)  # (B, H, n, 2c, d)
        values = torch.cat([vb, sv], dim=3)
        sorted_ok = real_block[:, :, None].expand(B, n, c)
        allowed = torch.cat([mb, sorted_ok], dim=2)[:, :, None, :].expand(B, n, c, 2 * c)
        any_key = allowed.any(-1, keepdim=True)
        out = F.scaled_dot_product_attention(qb, keys, values, attn_mask=(allowed | ~any_key)[:, None])
        out = out * any_key[:, None].to(out.dtype)
        return rearrange(out, "b h n c d -> b h (n c) d")[:, :, :L]

"""Two-level hierarchical attention, registered as `hierarchical`.

As in hierarchical document encoders (encode fixed chunks, then encode the chunk summaries): tokens attend within
their chunk of `chunk` tokens; each chunk is summarised by the masked mean of its tokens; the summaries attend to
each other; every token adds its chunk's contextualised summary. Time O(L * chunk + (L / chunk)^2).
Causal: tokens attend causally within the chunk and see only the summaries of earlier, complete chunks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.attention import MultiHeadBlock, sdpa_attention
from multiseq.blocks.registry import register_block


@register_block("hierarchical")
class Hierarchical(MultiHeadBlock):
    """Chunk-local attention plus attention among chunk summaries."""

    def __init__(self, dim: int, *, chunk: int = 64, **kwargs: Any) -> None:
        super().__init__(dim, **kwargs)
        f = dict(device=kwargs.get("device"), dtype=kwargs.get("dtype"))
        self.chunk = chunk
        self.summary_qkv = nn.Linear(dim, 3 * dim, **f)
        self.mix = nn.Linear(dim, dim, **f)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        c = min(self.chunk, L)
        pad = (-L) % c
        kpm = mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=x.device)
        m = F.pad(kpm, (0, pad), value=False)
        xp = F.pad(x, (0, 0, 0, pad)) * m[..., None].to(x.dtype)
        # Level 1: attention within chunks.
        q, k, v = rearrange(self.qkv(xp), "b (n c) (t h d) -> t (b n) h c d", c=c, t=3, h=self.heads)
        local = sdpa_attention(q, k, v, causal=self.causal, key_padding_mask=rearrange(m, "b (n c) -> (b n) c", c=c))
        local = rearrange(local, "(b n) h c d -> b (n c) (h d)", b=B)
        # Level 2: chunk summaries attend to each other.
        mc = rearrange(m, "b (n c) -> b n c", c=c)
        summ = rearrange(xp, "b (n c) d -> b n c d", c=c).sum(2) / mc.sum(-1, keepdim=True).clamp_min(1).to(x.dtype)
        real_chunk = mc.any(-1)  # (B, n)
        sq, sk, sv = rearrange(self.summary_qkv(summ), "b n (t h d) -> t b h n d", t=3, h=self.heads)
        if self.causal:
            # Chunk s sees summaries of complete chunks before it: shift by one chunk.
            ctx = sdpa_attention(sq, sk, sv, causal=True, key_padding_mask=real_chunk)
            ctx = F.pad(ctx[:, :, :-1], (0, 0, 1, 0))
        else:
            ctx = sdpa_attention(sq, sk, sv, key_padding_mask=real_chunk)
        ctx = self.mix(rearrange(ctx, "b h n d -> b n (h d)"))
        y = local + ctx.repeat_interleave(c, dim=1)
        return self.drop(self.out(y[:, :L]))

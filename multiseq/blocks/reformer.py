"""Reformer LSH attention (Kitaev et al., 2020), registered as `reformer`.

Shared query-key projection; keys are the unit-normalised queries. Each of `hashes` rounds hashes positions into
`buckets` buckets (by default `"auto"`: about one chunk of positions per bucket, as the paper sets the bucket count
from the length) by a random rotation (`argmax([xR, -xR])`, drawn from `seed` so that hashing is deterministic),
sorts positions by (bucket, position), cuts the sorted positions into chunks of `chunk` (causal: each bucket's
own), and lets each position attend to the keys of its own bucket in its chunk and the previous one. A position attends to itself only when it has no
other key. Rounds are combined by their log-sum-exp weights. Time and memory O(hashes * L * chunk): the sorted
layout holds the L positions (causal: plus at most one partly filled chunk per bucket, so about 1.5 L with
automatic buckets).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.registry import register_block
from multiseq.errors import ConfigError


def lsh_buckets(x: Tensor, buckets: int, hashes: int, seed: int) -> Tensor:
    """x: (B, H, L, d) -> bucket ids (hashes, B, H, L) in [0, buckets)."""
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(hashes, x.shape[-1], buckets // 2, generator=g).to(x)
    rot = torch.einsum("bhld,rdk->rbhlk", x, R)
    # argmax over [rot, -rot] without building it: the largest entry or the most negative one.
    hi, hi_at = rot.max(-1)
    lo, lo_at = rot.min(-1)
    return torch.where(hi >= -lo, hi_at, lo_at + buckets // 2)


def auto_buckets(length: int, chunk: int) -> int:
    """The even bucket count that puts about one chunk of positions in each bucket (at least 2)."""
    return max(2, 2 * round(length / (2 * chunk)))


@register_block("reformer")
class Reformer(nn.Module):
    """LSH attention with shared QK: `buckets` (even, or "auto"), `hashes` rounds, chunks of `chunk` sorted positions."""

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 8,
        buckets: int | str = "auto",
        hashes: int = 2,
        chunk: int = 64,
        seed: int = 0,
        causal: bool = False,
        dropout: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if buckets != "auto" and (not isinstance(buckets, int) or buckets < 2 or buckets % 2):
            raise ConfigError(f'buckets must be an even number >= 2 or "auto", got {buckets!r}')
        if not isinstance(chunk, int) or chunk < 1:
            raise ConfigError(f"chunk must be a positive number of positions, got {chunk!r}")
        if dim % heads:
            raise ConfigError(f"width {dim} is not divisible by heads={heads}")
        f = dict(device=device, dtype=dtype)
        self.heads, self.buckets, self.hashes, self.chunk, self.seed, self.causal = heads, buckets, hashes, chunk, seed, causal
        self.qk = nn.Linear(dim, dim, **f)
        self.v = nn.Linear(dim, dim, **f)
        self.out = nn.Linear(dim, dim, **f)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        B, L, D = x.shape
        h = self.heads
        qk = rearrange(self.qk(x), "b l (h d) -> b h l d", h=h)
        v = rearrange(self.v(x), "b l (h d) -> b h l d", h=h)
        kpm = mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=x.device)
        chunk = min(self.chunk, L)
        buckets = auto_buckets(L, chunk) if self.buckets == "auto" else self.buckets
        out = lsh_attention(qk, v, kpm, buckets, self.hashes, chunk, self.seed, self.causal)
        return self.drop(self.out(rearrange(out, "b h l d -> b l (h d)")))


def lsh_attention(
    qk: Tensor, v: Tensor, kpm: Tensor, buckets: int, hashes: int, chunk: int, seed: int, causal: bool
) -> Tensor:
    """qk, v: (B, H, L, d); kpm: (B, L) -> (B, H, L, d).

    Bidirectional: positions sorted by (bucket, position) are cut into chunks of `chunk` as in the paper, so the
    layout has exactly L slots (rounded up to a chunk). Causal: each bucket's sorted positions are laid out from a
    chunk boundary, so a position's chunk depends only on the earlier positions of its own bucket and the causal
    variant never sees the future (at most one partly filled chunk per bucket).
    """
    B, H, L, d = qk.shape
    k = F.normalize(qk, dim=-1)
    bkt = lsh_buckets(k.detach(), buckets, hashes, seed)  # (R, B, H, L)
    # Padding positions go to an extra bucket past the others, so real chunks never hold them.
    bkt = torch.where(kpm[None, :, None, :], bkt, buckets)
    nbk = buckets + 1
    counts = torch.zeros(*bkt.shape[:-1], nbk, dtype=bkt.dtype, device=bkt.device)
    counts.scatter_add_(-1, bkt, torch.ones_like(bkt))  # (R, B, H, nbk), without an (..., L, nbk) one-hot
    # Causal: every bucket starts on a chunk boundary. Bidirectional: sorted positions are chunked as they come
    # (a chunk may hold the end of one bucket and the start of the next; the bucket test keeps them apart).
    padded = -(-counts // chunk) * chunk if causal else counts
    slot_start = torch.cumsum(padded, -1) - padded  # first slot of each bucket
    first = torch.cumsum(counts, -1) - counts  # first sorted index of each bucket
    order = torch.argsort(bkt * L + torch.arange(L, device=qk.device), dim=-1)  # (R, B, H, L)
    sorted_bkt = torch.gather(bkt, -1, order)
    rank = torch.arange(L, device=qk.device) - torch.gather(first, -1, sorted_bkt)
    slot_sorted = torch.gather(slot_start, -1, sorted_bkt) + rank  # slot of each sorted position
    slot = torch.empty_like(slot_sorted).scatter_(-1, order, slot_sorted)  # slot of each original position
    S = -(-int(padded.sum(-1).max()) // chunk) * chunk  # slots for the fullest layout, in whole chunks
    outs, lses = [], []
    for r in range(hashes):
        idx = slot[r]  # (B, H, L)

        def place(t: Tensor, fill: Any = 0) -> Tensor:
            shape = (*t.shape[:2], S, *t.shape[3:])
            out = torch.full(shape, fill, dtype=t.dtype, device=t.device)
            index = idx.view(*idx.shape, *([1] * (t.dim() - 3))).expand_as(t)
            return out.scatter(2, index, t)

        pos = torch.arange(L, device=qk.device).expand(B, H, L)
        sq, sk, sv = place(qk), place(k), place(v)
        sb = place(bkt[r], -1)
        sp = place(pos, -1)
        cq = rearrange(sq, "b h (n c) d -> b h n c d", c=chunk)

        def look_back(t: Tensor, fill: Any) -> Tensor:
            # Each chunk with the previous one: (B, H, n*c, ...) -> (B, H, n, 2c, ...)
            t = rearrange(t, "b h (n c) ... -> b h n c ...", c=chunk)
            prev = torch.cat([torch.full_like(t[:, :, :1], fill), t[:, :, :-1]], dim=2)
            return torch.cat([prev, t], dim=3)

        ck, cv = look_back(sk, 0.0), look_back(sv, 0.0)
        kb, kp = look_back(sb, -1), look_back(sp, -1)
        qb = rearrange(sb, "b h (n c) -> b h n c", c=chunk)
        qp = rearrange(sp, "b h (n c) -> b h n c", c=chunk)
        scores = torch.einsum("bhncd,bhnkd->bhnck", cq, ck) / math.sqrt(d)
        allowed = (kb[..., None, :] == qb[..., :, None]) & (kb[..., None, :] >= 0) & (kb[..., None, :] < buckets)
        if causal:
            allowed = allowed & (kp[..., None, :] <= qp[..., :, None])
        self_key = kp[..., None, :] == qp[..., :, None]
        others = (allowed & ~self_key).any(-1, keepdim=True)
        allowed = allowed & ~(self_key & others)  # itself only when nothing else
        any_key = allowed.any(-1, keepdim=True)
        scores = scores.masked_fill(~allowed, float("-inf")).masked_fill(~any_key, 0.0)
        lse = torch.logsumexp(scores, dim=-1, keepdim=True)
        o = torch.einsum("bhnck,bhnkd->bhncd", torch.exp(scores - lse) * any_key, cv)
        lse = torch.where(any_key, lse, torch.full_like(lse, -1e4))
        o = rearrange(o, "b h n c d -> b h (n c) d")
        lse = rearrange(lse, "b h n c 1 -> b h (n c)")
        outs.append(torch.gather(o, 2, idx[..., None].expand(-1, -1, -1, d)))
        lses.append(torch.gather(lse, 2, idx))
    lse = torch.stack(lses)  # (R, B, H, L)
    w = torch.softmax(lse, dim=0)[..., None]
    out = (torch.stack(outs) * w).sum(0)
    return out * kpm[:, None, :, None].to(out.dtype)

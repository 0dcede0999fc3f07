"""Softmax attention baselines: `attention` (SDPA), `attention_explicit` (materialised L x L) and `local`.

`local_attention` is the blocked sliding-window op: memory O(L * window), never the L x L matrix and never an
`unfold` copy of every window. `local_attention_ref` is its dense masked specification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.registry import register_block
from multiseq.kernels import is_tracing, register_fused, use_fused

register_fused("local_attention", "FlexAttention with a sliding-window block mask", needs=("cuda", "flex", "compile"))


def _check_qkv(
    q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, same_length: bool = True
) -> None:
    """q: (B, H, Lq, d); k, v: (B, H, Lk, d) (Lq == Lk when `same_length`); key_padding_mask: (B, Lk) bool."""
    ok = q.dim() == 4 and k.shape == v.shape and q.shape[:2] == k.shape[:2] and q.shape[3] == k.shape[3]
    if not ok or (same_length and q.shape != k.shape):
        raise ValueError(f"q, k, v must share shape (B, H, L, d); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not q.is_floating_point():
        raise TypeError(f"q, k, v must be floating point, got {q.dtype}")
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise TypeError(f"key_padding_mask must be bool (True = real token), got {key_padding_mask.dtype}")
        if key_padding_mask.shape != (k.shape[0], k.shape[2]):
            raise ValueError(
                f"key_padding_mask must have shape (B, L) = {(k.shape[0], k.shape[2])}, got {tuple(key_padding_mask.shape)}"
            )


def _check_window(window: int) -> int:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    return window


def band_mask(L: int, window: int, causal: bool, device: Any = None) -> Tensor:
    """Boolean (L, L) mask: query i may see key j (`|i-j| <= window//2`, or `i-window < j <= i` when causal)."""
    i = torch.arange(L, device=device)[:, None]
    j = torch.arange(L, device=device)[None, :]
    if causal:
        return (j <= i) & (j > i - window)
    return (i - j).abs() <= window // 2


def local_attention_ref(
    q: Tensor, k: Tensor, v: Tensor, window: int, causal: bool = False, key_padding_mask: Tensor | None = None
) -> Tensor:
    """Dense masked reference for `local_attention` (O(L^2) memory; the specification, not for long inputs).

    Query rows with no visible real key return zeros.
    """
    _check_qkv(q, k, v, key_padding_mask)
    _check_window(window)
    B, H, L, d = q.shape
    allowed = band_mask(L, window, causal, q.device)[None, None]  # (1, 1, L, L)
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :]
    scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(d)
    scores = scores.masked_fill(~allowed, float("-inf"))
    any_key = allowed.any(-1, keepdim=True)
    probs = torch.softmax(scores.masked_fill(~any_key, 0.0), dim=-1) * any_key
    return torch.einsum("bhij,bhjd->bhid", probs, v)


def local_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    window: int,
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Sliding-window softmax attention computed in blocks.

    Query i sees key j when `|i - j| <= window // 2` (bidirectional) or `i - window < j <= i` (causal), and j is
    a real token. Rows that see no real key return zeros.

    Args:
        q, k, v: (B, H, L, d).
        window: window size >= 1.
        causal: causal window.
        key_padding_mask: (B, L) bool, True = real token.

    Returns:
        (B, H, L, d).
    """
    _check_qkv(q, k, v, key_padding_mask)
    _check_window(window)
    if q.shape[2] == 0:
        return q.clone()
    w = window_blocks(q, k, v, window, causal, key_padding_mask)
    return blocked_softmax(w.q, w.k, w.v, w.allowed, q.shape[2])


@dataclass
class WindowBlocks:
    """Queries in blocks with the keys of their window.

    Attributes:
        q: (B, H, nb, c, d) query blocks. k, v: (B, H, nb, W, d) each block's window of keys.
        allowed: (B, nb, c, W) bool, band and key padding.
        block: c. left: blocks of keys before each query block. key_pos: (nb, W) key positions (may be < 0 or >= L).
        query_pos: (nb, c) query positions.
    """

    q: Tensor
    k: Tensor
    v: Tensor
    allowed: Tensor
    block: int
    left: int
    key_pos: Tensor
    query_pos: Tensor


def window_blocks(
    q: Tensor, k: Tensor, v: Tensor, window: int, causal: bool, key_padding_mask: Tensor | None, block: int | None = None
) -> WindowBlocks:
    """Split q into blocks and gather each block's window of keys (its own block and its neighbours), with the
    band mask. Memory O(L * window); never the L x L matrix, never one copy per window position."""
    B, H, L, d = q.shape
    reach = window - 1 if causal else window // 2
    # Blocks at least as long as the reach, so each query block needs only its neighbour blocks.
    if block is None:
        block = max(min(reach, L - 1), min(64, L), 1)
    nb = -(-L // block)
    left = -(-reach // block) if (reach > 0 and nb > 1) else 0
    left = min(left, nb - 1)
    right = 0 if causal else left
    pad = nb * block - L
    if key_padding_mask is None:
        key_padding_mask = torch.ones(B, L, dtype=torch.bool, device=q.device)
    q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    kpm = F.pad(key_padding_mask, (0, pad), value=False)
    span = left + 1 + right

    def windows(t: Tensor) -> Tensor:
        # (B, H, nb*block, d) -> (B, H, nb, span*block, d): each block with its neighbours.
        t = rearrange(t, "b h (n c) d -> b h n c d", c=block)
        t = F.pad(t, (0, 0, 0, 0, left, right))
        return torch.cat([t[:, :, s : s + nb] for s in range(span)], dim=3)

    m = rearrange(kpm, "b (n c) -> b n c", c=block)
    m = F.pad(m, (0, 0, left, right), value=False)
    mw = torch.cat([m[:, s : s + nb] for s in range(span)], dim=2)  # (B, nb, W)
    dev = q.device
    query_pos = torch.arange(nb * block, device=dev).view(nb, block)
    key_pos = (torch.arange(nb, device=dev)[:, None] - left) * block + torch.arange(span * block, device=dev)[None]
    delta = key_pos[:, None, :] - query_pos[:, :, None]  # (nb, c, W)
    band = (delta <= 0) & (delta > -window) if causal else delta.abs() <= window // 2
    allowed = band[None] & mw[:, :, None, :]
    qb = rearrange(q, "b h (n c) d -> b h n c d", c=block)
    return WindowBlocks(qb, windows(k), windows(v), allowed, block, left, key_pos, query_pos)


def blocked_softmax(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, L: int) -> Tensor:
    """Softmax attention per query block. q: (B, H, nb, c, d); k, v: (B, H, nb, W, d); allowed: (B, nb, c, W).

    Returns (B, H, L, d) (blocks flattened, cut to L); rows with no allowed key are zero.
    """
    any_key = allowed.any(-1, keepdim=True)
    # Rows with no visible key would give NaN in softmax: let them see everything, then zero them.
    allowed = allowed | ~any_key
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])  # (B, H, nb, c, d)
    out = out * any_key[:, None].to(out.dtype)
    return rearrange(out, "b h n c d -> b h (n c) d")[:, :, :L]


def attention_ref(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = False, key_padding_mask: Tensor | None = None
) -> Tensor:
    """Full softmax attention with the L x L matrix materialised (the papers' baseline). (B, H, L, d) in and out."""
    L = q.shape[2]
    return local_attention_ref(q, k, v, window=max(2 * L + 1, 1), causal=causal, key_padding_mask=key_padding_mask)


def sdpa_attention(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = False, key_padding_mask: Tensor | None = None
) -> Tensor:
    """Softmax attention through `scaled_dot_product_attention`, padding honoured, no NaN on empty rows.

    Args:
        q: (B, H, Lq, d). k, v: (B, H, Lk, d) (Lq == Lk when causal).
        key_padding_mask: (B, Lk) bool, True = real token.

    Returns:
        (B, H, Lq, d); query rows that see no real key are zero.
    """
    _check_qkv(q, k, v, key_padding_mask, same_length=causal)
    if key_padding_mask is None or (not is_tracing() and bool(key_padding_mask.all())):  # traced: general path
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    L = q.shape[2]
    kpm = key_padding_mask
    if causal:
        allowed = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()[None, None] & kpm[:, None, None, :]
        any_key = allowed.any(-1, keepdim=True)  # (B, 1, L, 1)
        allowed = allowed | ~any_key
    else:
        any_key = kpm.any(-1)[:, None, None, None]  # (B, 1, 1, 1)
        allowed = (kpm | ~kpm.any(-1, keepdim=True))[:, None, None, :]  # (B, 1, 1, Lk)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    return out * any_key.to(out.dtype)


class CrossAttention(nn.Module):
    """Multi-head attention of queries `(B, Lq, D)` over keys/values `(B, Lk, D)` with a key mask `(B, Lk)`.

    Args:
        project_out: end with an output projection (off when the caller projects the result itself).
    """

    def __init__(self, dim: int, heads: int, project_out: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, device=device, dtype=dtype)
        self.kv = nn.Linear(dim, 2 * dim, device=device, dtype=dtype)
        self.out = nn.Linear(dim, dim, device=device, dtype=dtype) if project_out else nn.Identity()

    def split(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, H, L, d)."""
        return rearrange(x, "b l (h d) -> b h l d", h=self.heads)

    def merge(self, x: Tensor) -> Tensor:
        """(B, H, L, d) -> (B, L, D) through the output projection."""
        return self.out(rearrange(x, "b h l d -> b l (h d)"))

    def forward(self, xq: Tensor, xkv: Tensor, key_mask: Tensor | None, causal: bool = False) -> Tensor:
        q = self.split(self.q(xq))
        k, v = (self.split(t) for t in self.kv(xkv).chunk(2, dim=-1))
        return self.merge(sdpa_attention(q, k, v, causal=causal, key_padding_mask=key_mask))


class MultiHeadBlock(nn.Module):
    """Shared projections for multi-head attention blocks: `x -> q, k, v -> attend -> out`.

    Subclasses implement `attend(q, k, v, mask) -> (B, H, L, d)`.
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 8,
        causal: bool = False,
        dropout: float = 0.0,
        qkv_bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads={heads}; choose heads dividing the width")
        self.heads = heads
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, device=device, dtype=dtype)
        self.out = nn.Linear(dim, dim, device=device, dtype=dtype)
        # Dropout on the output, never inside SDPA: dropout_p > 0 forces a slow CPU fallback.
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool (True = real) -> (B, L, D)."""
        q, k, v = rearrange(self.qkv(x), "b l (t h d) -> t b h l d", t=3, h=self.heads)
        y = self.attend(q, k, v, mask)  # (B, H, L, d)
        return self.drop(self.out(rearrange(y, "b h l d -> b l (h d)")))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        raise NotImplementedError


@register_block("attention")
class Attention(MultiHeadBlock):
    """Multi-head softmax attention through PyTorch SDPA (fused, memory linear in length)."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        return sdpa_attention(q, k, v, causal=self.causal, key_padding_mask=mask)


@register_block("attention_explicit")
class ExplicitAttention(MultiHeadBlock):
    """Multi-head softmax attention with the L x L matrix materialised, as in the papers' memory tables."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        return attention_ref(q, k, v, causal=self.causal, key_padding_mask=mask)


@register_block("local")
class LocalAttention(MultiHeadBlock):
    """Sliding-window multi-head attention computed in blocks (memory O(L * window)).

    Args:
        window: window size; bidirectional queries see `window // 2` keys each side, causal ones the last `window`.
    """

    def __init__(self, dim: int, *, window: int = 256, **kwargs: Any) -> None:
        super().__init__(dim, **kwargs)
        self.window = _check_window(window)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        if use_fused("local_attention", q):
            from multiseq.kernels.flex_local import flex_local_attention

            return flex_local_attention(q, k, v, self.window, self.causal, mask)
        return local_attention(q, k, v, self.window, causal=self.causal, key_padding_mask=mask)

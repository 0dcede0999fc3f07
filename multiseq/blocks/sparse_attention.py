"""Sparse-pattern softmax attention: Sparse Transformer (`sparse`), Longformer (`longformer`), BigBird (`bigbird`).

None of them forms the L x L matrix:

* `sparse` (Child et al., 2019), factorised over a grid of rows of length `stride` (about sqrt(L)): half of the
  heads attend within their row (the local pattern); the other half attend along their column (`strided`: keys j
  with (i - j) divisible by `stride`) or to the last `summary` positions of every row (`fixed`). Memory
  O(L * (stride + L / stride)). Causal variants keep j <= i.
* `longformer` (Beltagy et al., 2020): a sliding window of `window`, plus `global_tokens` leading positions that
  attend to everything and that everything attends to.
* `bigbird` (Zaheer et al., 2020): blocks of `block` tokens; each query block attends to its own and neighbouring
  blocks (the window), to the `global_blocks` leading blocks, and to `random_blocks` random blocks (a fixed draw per
  sequence length, from `seed`); the global blocks attend to everything.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from multiseq.blocks.attention import MultiHeadBlock, blocked_softmax, window_blocks
from multiseq.blocks.registry import register_block


def _grid_attention(q: Tensor, k: Tensor, v: Tensor, kpm: Tensor, allowed: Tensor) -> Tensor:
    """Softmax attention within groups: q, k, v (B, H, G, n, d), allowed (B, G, n, n) -> (B, H, G, n, d)."""
    any_key = allowed.any(-1, keepdim=True)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=(allowed | ~any_key)[:, None])
    return out * any_key[:, None].to(out.dtype)


def strided_attention(
    q: Tensor, k: Tensor, v: Tensor, stride: int, pattern: str, causal: bool, kpm: Tensor, summary: int = 1
) -> tuple[Tensor, Tensor]:
    """Row (local) and column (strided) / summary (fixed) attention. q, k, v: (B, H, L, d), kpm (B, L).

    Returns (row_out, second_out), each (B, H, L, d).
    """
    B, H, L, d = q.shape
    pad = (-L) % stride
    qp, kp, vp = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    m = F.pad(kpm, (0, pad), value=False)
    R = (L + pad) // stride
    pos = torch.arange(R * stride, device=q.device).view(R, stride)
    # Rows: groups are rows of the grid.
    rq, rk, rv = (rearrange(t, "b h (r s) d -> b h r s d", s=stride) for t in (qp, kp, vp))
    rm = m.view(B, R, stride)
    allowed = rm[:, :, None, :].expand(B, R, stride, stride)
    if causal:
        allowed = allowed & (pos[:, None, :] <= pos[:, :, None])[None]
    row = rearrange(_grid_attention(rq, rk, rv, m, allowed), "b h r s d -> b h (r s) d")[:, :, :L]
    if pattern == "strided":
        # Columns: groups are columns of the grid (positions with equal i mod stride).
        cq, ck, cv = (rearrange(t, "b h (r s) d -> b h s r d", s=stride) for t in (qp, kp, vp))
        cm = rm.transpose(1, 2)  # (B, stride, R)
        allowed = cm[:, :, None, :].expand(B, stride, R, R)
        if causal:
            allowed = allowed & torch.ones(R, R, dtype=torch.bool, device=q.device).tril()[None, None]
        col = rearrange(_grid_attention(cq, ck, cv, m, allowed), "b h s r d -> b h (r s) d")[:, :, :L]
        return row, col
    # Fixed: every query attends to the last `summary` positions of every row.
    sel = (pos[:, stride - summary :]).reshape(-1)  # (R * summary,)
    sk, sv = kp[:, :, sel], vp[:, :, sel]
    allowed = m[:, sel][:, None, :].expand(B, R * stride, sel.numel())
    if causal:
        allowed = allowed & (sel[None, :] <= torch.arange(R * stride, device=q.device)[:, None])[None]
    allowed = allowed[:, :L]
    any_key = allowed.any(-1, keepdim=True)
    out = F.scaled_dot_product_attention(q, sk, sv, attn_mask=(allowed | ~any_key)[:, None])
    return row, out * any_key[:, None].to(out.dtype)


@register_block("sparse")
class SparseAttention(MultiHeadBlock):
    """Sparse Transformer factorised attention.

    Args:
        stride: row length of the grid (about sqrt of the typical length; fixed, so padding never changes the grid).
        pattern: `strided` or `fixed`.
        summary: positions per row that every query sees in the `fixed` pattern.
    """

    def __init__(self, dim: int, *, stride: int = 32, pattern: str = "strided", summary: int = 1, **kwargs: Any):
        super().__init__(dim, **kwargs)
        if pattern not in ("strided", "fixed"):
            raise ValueError(f"pattern must be 'strided' or 'fixed', got {pattern!r}")
        if self.heads < 2:
            raise ValueError("the sparse block splits heads between two patterns: heads must be >= 2")
        self.stride, self.pattern, self.summary = stride, pattern, summary

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        B, H, L, d = q.shape
        stride = self.stride
        summary = max(1, min(self.summary, stride))
        kpm = mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=q.device)
        h = H // 2
        row, _ = strided_attention(q[:, :h], k[:, :h], v[:, :h], stride, self.pattern, self.causal, kpm, summary)
        _, second = strided_attention(q[:, h:], k[:, h:], v[:, h:], stride, self.pattern, self.causal, kpm, summary)
        return torch.cat([row, second], dim=1)


def random_block_choice(nb: int, r: int, seed: int) -> Tensor:
    """(nb, min(r, nb)) key-block indices for each query block: a fixed draw for a given number of blocks and seed."""
    g = torch.Generator().manual_seed(seed * 7919 + nb)
    return torch.stack([torch.randperm(nb, generator=g)[: min(r, nb)] for _ in range(nb)])


def window_global_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    window: int,
    n_global: int,
    causal: bool,
    kpm: Tensor,
    block: int | None = None,
    random_blocks: int = 0,
    seed: int = 0,
) -> Tensor:
    """Window + global (+ random blocks) attention in one softmax per query. q, k, v: (B, H, L, d) -> (B, H, L, d).

    Global positions are the first `n_global`; they attend to every key (j <= i when causal).
    """
    B, H, L, d = q.shape
    n_global = min(n_global, L)
    w = window_blocks(q, k, v, window, causal, kpm, block=block)
    nb, c = w.query_pos.shape
    extra_k, extra_v, extra_ok = [], [], []
    if n_global:
        gpos = torch.arange(n_global, device=q.device)
        gk = k[:, :, :n_global][:, :, None].expand(B, H, nb, n_global, d)
        gv = v[:, :, :n_global][:, :, None].expand(B, H, nb, n_global, d)
        delta = gpos[None, None, :] - w.query_pos[:, :, None]  # (nb, c, G)
        in_band = (delta <= 0) & (delta > -window) if causal else delta.abs() <= window // 2
        # A global key inside the band is already counted there, not twice.
        ok = kpm[:, None, None, :n_global] & ~in_band[None]
        if causal:
            ok = ok & (delta <= 0)[None]
        extra_k.append(gk)
        extra_v.append(gv)
        extra_ok.append(ok)
    if random_blocks and nb > 1:
        kb = F.pad(k, (0, 0, 0, nb * c - L))
        vb = F.pad(v, (0, 0, 0, nb * c - L))
        mb = F.pad(kpm, (0, nb * c - L), value=False).view(B, nb, c)
        choice = random_block_choice(nb, random_blocks, seed).to(q.device)  # (nb, r)
        r = choice.shape[1]
        rk = rearrange(kb, "b h (n c) d -> b h n c d", c=c)[:, :, choice]  # (B, H, nb, r, c, d)
        rv = rearrange(vb, "b h (n c) d -> b h n c d", c=c)[:, :, choice]
        rpos = choice[:, :, None] * c + torch.arange(c, device=q.device)  # (nb, r, c)
        rpos = rpos.reshape(nb, r * c)
        # Skip random keys already covered by the window or the global set.
        delta = rpos[:, None, :] - w.query_pos[:, :, None]
        in_band = (delta <= 0) & (delta > -window) if causal else delta.abs() <= window // 2
        ok = mb[:, choice].reshape(B, nb, 1, r * c) & ~in_band[None] & (rpos >= n_global)[:, None, :][None]
        if causal:
            ok = ok & (delta <= 0)[None]
        extra_k.append(rk.reshape(B, H, nb, r * c, d))
        extra_v.append(rv.reshape(B, H, nb, r * c, d))
        extra_ok.append(ok.expand(B, nb, c, r * c))
    kk = torch.cat([w.k, *extra_k], dim=3)
    vv = torch.cat([w.v, *extra_v], dim=3)
    allowed = torch.cat([w.allowed, *[o.expand(B, nb, c, o.shape[-1]) for o in extra_ok]], dim=3)
    out = blocked_softmax(w.q, kk, vv, allowed, L)
    if n_global:
        # Global queries attend to every (real) key.
        gq = q[:, :, :n_global]
        allowed_g = kpm[:, None, None, :].expand(B, 1, n_global, L)
        if causal:
            allowed_g = allowed_g & (torch.arange(L, device=q.device)[None, :] <= torch.arange(n_global, device=q.device)[:, None])
        any_key = allowed_g.any(-1, keepdim=True)
        rows = F.scaled_dot_product_attention(gq, k, v, attn_mask=allowed_g | ~any_key) * any_key.to(q.dtype)
        out = torch.cat([rows, out[:, :, n_global:]], dim=2)
    return out


@register_block("longformer")
class Longformer(MultiHeadBlock):
    """Sliding window of `window` plus `global_tokens` leading global positions (e.g. a CLS token)."""

    def __init__(self, dim: int, *, window: int = 128, global_tokens: int = 1, **kwargs: Any):
        super().__init__(dim, **kwargs)
        self.window, self.global_tokens = window, global_tokens

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        B, H, L, d = q.shape
        kpm = mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=q.device)
        return window_global_attention(q, k, v, self.window, self.global_tokens, self.causal, kpm)


@register_block("bigbird")
class BigBird(MultiHeadBlock):
    """Block-sparse attention: window of 3 blocks, `global_blocks` leading global blocks, `random_blocks` random
    blocks per query block."""

    def __init__(
        self, dim: int, *, block: int = 32, global_blocks: int = 1, random_blocks: int = 2, seed: int = 0, **kwargs: Any
    ):
        super().__init__(dim, **kwargs)
        self.block, self.global_blocks, self.random_blocks, self.seed = block, global_blocks, random_blocks, seed

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        B, H, L, d = q.shape
        kpm = mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=q.device)
        c = min(self.block, L)
        window = 2 * c + 1 if not self.causal else 2 * c
        return window_global_attention(
            q, k, v, window, self.global_blocks * c, self.causal, kpm, block=c,
            random_blocks=self.random_blocks, seed=self.seed,
        )

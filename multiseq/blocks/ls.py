"""Transformer-LS (Zhu et al., NeurIPS 2021): long-short attention with dynamic projection, segment-wise sliding
window and DualLN.

`long_short_attention` is the blocked op: each segment of `window` queries attends, with ONE softmax, to the `r`
global (dynamically projected) keys and to its own segment widened by `window // 2` keys on each side. Memory is
O(L * (window + r)); the L x L matrix is never formed and no per-position window is copied.
`long_short_attention_ref` is its dense masked specification (the full L x (r + L) logits with the band mask).

Causal convention: `k_global` holds `n = ceil(L / window)` groups of `r // n` projections, segment-major, group s
summarising positions `[s * window, (s + 1) * window)`; queries of segment s see the groups of segments `< s` only
(the fully past ones), and local keys `j <= i`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.attention import MultiHeadBlock, _check_qkv, _check_window
from multiseq.blocks.registry import register_block
from multiseq.kernels import register_fused, use_fused

register_fused(
    "long_short_attention",
    "FlexAttention over [global; local] keys with a segment-window block mask",
    needs=("cuda", "flex", "compile"),
)


def _check_global(q: Tensor, k_global: Tensor, v_global: Tensor, window: int, causal: bool) -> int:
    """Validate the global keys; returns the number of global keys per segment group (causal) or r."""
    B, H, L, d = q.shape
    if k_global.dim() != 4 or k_global.shape != v_global.shape or k_global.shape[:2] != (B, H) or k_global.shape[3] != d:
        raise ValueError(
            f"k_global, v_global must share shape (B, H, r, d) = ({B}, {H}, r, {d}); "
            f"got {tuple(k_global.shape)}, {tuple(v_global.shape)}"
        )
    if k_global.dtype != q.dtype or v_global.dtype != q.dtype:
        raise TypeError(f"k_global, v_global must have the dtype of q ({q.dtype}), got {k_global.dtype}, {v_global.dtype}")
    r = k_global.shape[2]
    if not causal or r == 0 or L == 0:
        return r
    n = -(-L // window)
    if r % n:
        raise ValueError(
            f"causal long-short attention needs k_global grouped per segment: r = {r} is not a multiple of the "
            f"number of segments ceil(L / window) = {n} (L = {L}, window = {window})"
        )
    return r // n


def long_short_masks(
    L: int, r: int, window: int, causal: bool, key_padding_mask: Tensor | None = None, device: Any = None
) -> Tensor:
    """Dense boolean (B|1, L, r + L) mask of the attended set: query i may see global key g / local key j.

    Local: `s*window - window//2 <= j < (s+1)*window + window//2` with `s = i // window` (and `j <= i` when causal),
    and j real. Global: always when bidirectional; group `g // (r // n) < s` when causal.
    """
    i = torch.arange(L, device=device)[:, None]
    j = torch.arange(L, device=device)[None, :]
    s = i // window
    half = window // 2
    local = (j >= s * window - half) & (j < (s + 1) * window + half)
    if causal:
        local = local & (j <= i)
    g = torch.arange(r, device=device)[None, :]
    if causal and r:
        per = r // -(-L // window)
        glob = g // per < s
    else:
        glob = torch.ones(L, r, dtype=torch.bool, device=device)
    local = local[None]
    if key_padding_mask is not None:
        local = local & key_padding_mask[:, None, :]
    return torch.cat([glob[None].expand(local.shape[0], L, r), local], dim=-1)


def long_short_attention_ref(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    k_global: Tensor,
    v_global: Tensor,
    window: int,
    key_padding_mask: Tensor | None = None,
    causal: bool = False,
) -> Tensor:
    """Dense masked reference for `long_short_attention` (O(L * (r + L)) memory; the specification).

    Rows with no visible key return zeros.
    """
    _check_qkv(q, k, v, key_padding_mask)
    _check_window(window)
    _check_global(q, k_global, v_global, window, causal)
    B, H, L, d = q.shape
    r = k_global.shape[2]
    allowed = long_short_masks(L, r, window, causal, key_padding_mask, q.device)[:, None]  # (B|1, 1, L, r+L)
    keys = torch.cat([k_global, k], dim=2)  # (B, H, r+L, d)
    values = torch.cat([v_global, v], dim=2)
    scores = torch.einsum("bhid,bhjd->bhij", q, keys) / math.sqrt(d)
    scores = scores.masked_fill(~allowed, float("-inf"))
    any_key = allowed.any(-1, keepdim=True)
    probs = torch.softmax(scores.masked_fill(~any_key, 0.0), dim=-1) * any_key
    return torch.einsum("bhij,bhjd->bhid", probs, values)


def long_short_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    k_global: Tensor,
    v_global: Tensor,
    window: int,
    key_padding_mask: Tensor | None = None,
    causal: bool = False,
) -> Tensor:
    """Long-short attention computed segment by segment (one SDPA call over all segments).

    For query i in segment `s = i // window` the attended set is the global keys (all of them; when causal, only
    the groups of fully past segments) plus the local keys j with
    `s*window - window//2 <= j < (s+1)*window + window//2` (and `j <= i` when causal) that are real tokens; one
    softmax over the whole set, scaled by `1/sqrt(d)`. Rows with no visible key return zeros.

    Args:
        q, k, v: (B, H, L, d).
        k_global, v_global: (B, H, r, d); r may be 0. Causal: `r = ceil(L / window) * r_seg`, segment-major.
        window: segment size w >= 1; a segment sees `w + 2 * (w // 2)` local keys (`w + w // 2` when causal).
        key_padding_mask: (B, L) bool, True = real token (masks local keys; global keys are always real).
        causal: restrict to the past as described above.

    Returns:
        (B, H, L, d).
    """
    _check_qkv(q, k, v, key_padding_mask)
    _check_window(window)
    per = _check_global(q, k_global, v_global, window, causal)
    if use_fused("long_short_attention", q):
        from multiseq.kernels.flex_ls import flex_long_short_attention

        return flex_long_short_attention(q, k, v, k_global, v_global, window, key_padding_mask, causal)
    return _blocked(q, k, v, k_global, v_global, window, key_padding_mask, causal, per)


def _blocked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kg: Tensor,
    vg: Tensor,
    w: int,
    kpm: Tensor | None,
    causal: bool,
    per: int,
) -> Tensor:
    B, H, L, d = q.shape
    if L == 0:
        return q.clone()
    half = w // 2
    n = -(-L // w)
    pad = n * w - L
    r = kg.shape[2]
    # Local keys of segment s: positions [s*w - half, s*w + span - half); causal needs nothing right of the segment.
    span = w + half if causal else w + 2 * half
    right = pad + (0 if causal else half)
    if kpm is None:
        kpm = torch.ones(B, L, dtype=torch.bool, device=q.device)
    # (B, H, L, d) -> (B, n, H, ...): segments become batch entries of a single 4-D SDPA call.
    qs = rearrange(F.pad(q, (0, 0, 0, pad)) if pad else q, "b h (n c) d -> (b n) h c d", c=w)
    kw = _Tiles.apply(k, kg, w, n, causal)
    vw = _Tiles.apply(v, vg, w, n, causal)
    mw = F.pad(kpm, (half, right), value=False).unfold(1, span, w)  # (B, n, span)
    if not causal:
        # (B, n, 1, r + span): every query of a segment sees the same keys, the global ones always.
        allowed = F.pad(mw, (r, 0), value=True)[:, :, None, :]
    else:
        a = torch.arange(w, device=q.device)[:, None]
        c = torch.arange(span, device=q.device)[None, :]
        local = mw[:, :, None, :] & (c <= a + half)  # (B, n, w, span): key position j = s*w - half + c <= i
        glob = (torch.arange(r, device=q.device)[None, :] // max(per, 1)) < torch.arange(n, device=q.device)[:, None]
        allowed = torch.cat([glob[None, :, None, :].expand(B, n, w, r), local], dim=-1)
    allowed = rearrange(allowed, "b n a c -> (b n) 1 a c")
    if r and not causal:  # every row sees the global keys
        out = F.scaled_dot_product_attention(qs, kw, vw, attn_mask=allowed)  # (B*n, H, w, d)
    else:
        any_key = allowed.any(-1, keepdim=True)
        # Rows with no visible key would give NaN in softmax: let them see everything, then zero them.
        out = F.scaled_dot_product_attention(qs, kw, vw, attn_mask=allowed | ~any_key)
        out = out * any_key.to(out.dtype)
    return rearrange(out, "(b n) h c d -> b h (n c) d", b=B)[:, :, :L]


class _Tiles(torch.autograd.Function):
    """Keys of every segment, global ones first: (B, H, L, d), (B, H, r, d) -> (B*n, H, r + span, d).

    Forward writes one buffer slice by slice (one pass, no padded copy): the global keys, the last `w // 2`
    positions of the previous segment, the segment itself and (bidirectional) the first `w // 2` of the next one;
    positions outside the sequence are zeros (masked by the caller). Backward folds the tile gradients back onto
    the sequence in one pass, instead of autograd's clone of the whole buffer per slice assignment.
    """

    @staticmethod
    def forward(ctx, t: Tensor, g: Tensor, w: int, n: int, causal: bool) -> Tensor:  # type: ignore[override]
        B, H, L, d = t.shape
        r, half = g.shape[2], w // 2
        span = w + half if causal else w + 2 * half
        pad = n * w - L
        seg = rearrange(F.pad(t, (0, 0, 0, pad)) if pad else t, "b h (n c) d -> b n h c d", c=w)
        buf = t.new_empty(B, n, H, r + span, d)
        if r:
            buf[:, :, :, :r] = g[:, None]
        buf[:, :, :, r + half : r + half + w] = seg
        if half:
            buf[:, :1, :, r : r + half] = 0
            buf[:, 1:, :, r : r + half] = seg[:, :-1, :, w - half :]
            if not causal:
                buf[:, -1:, :, r + half + w :] = 0
                buf[:, :-1, :, r + half + w :] = seg[:, 1:, :, :half]
        ctx.dims = (B, L, r, half, w, causal)
        return rearrange(buf, "b n h c d -> (b n) h c d")

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        B, L, r, half, w, causal = ctx.dims
        gb = rearrange(grad, "(b n) h c d -> b n h c d", b=B)
        g_glob = gb[:, :, :, :r].sum(1) if r else None  # (B, H, r, d)
        g_seg = gb[:, :, :, r + half : r + half + w].clone()  # (B, n, H, w, d)
        if half:
            g_seg[:, :-1, :, w - half :] += gb[:, 1:, :, r : r + half]
            if not causal:
                g_seg[:, 1:, :, :half] += gb[:, :-1, :, r + half + w :]
        g_t = rearrange(g_seg, "b n h c d -> b h (n c) d")[:, :, :L]
        return g_t, g_glob, None, None, None


def dynamic_projection(scores: Tensor, kv: Tensor, mask: Tensor | None, segment: int | None = None) -> Tensor:
    """Dynamic low-rank projection of keys and values (Transformer-LS long branch).

    `P = softmax(scores)` over the sequence axis (per segment of `segment` positions when given), padding
    excluded; `k_bar = P^T k`, `v_bar = P^T v`. A group with no real position projects to zeros.

    Args:
        scores: (B, L, H, r) projection logits computed from the layer input.
        kv: (B, L, T, H, d): keys and values stacked (T = 2), or any T tensors to project with the same P.
        mask: (B, L) bool, True = real.
        segment: None (one projection of the whole sequence), or a segment length (causal: `ceil(L/segment)`
            groups of r projections each, segment-major).

    Returns:
        (T, B, H, r, d), or (T, B, H, ceil(L/segment) * r, d) with `segment`.
    """
    B, L, H, r = scores.shape
    s = scores if scores.dtype == torch.float64 else scores.float()  # softmax in at least fp32
    if segment is None:
        segment = max(L, 1)
    n = -(-L // segment)
    pad = n * segment - L
    if pad:
        s = F.pad(s, (0, 0, 0, 0, 0, pad))
        kv = F.pad(kv, (0, 0, 0, 0, 0, 0, 0, pad))
        mask = F.pad(mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=s.device), (0, pad))
    s = rearrange(s, "b (n c) h r -> b n c h r", c=segment)
    if mask is not None:
        m = rearrange(mask, "b (n c) -> b n c 1 1", c=segment)
        s = s.masked_fill(~m, float("-inf"))
    p = torch.softmax(s, dim=2)  # (B, n, c, H, r)
    if mask is not None and not bool(m.any(2).all()):
        p = p.nan_to_num(0.0)  # a group with no real position: softmax over all -inf is NaN; project to zeros
    kv = rearrange(kv, "b (n c) t h d -> b n c t h d", c=segment)
    bar = torch.einsum("bnchr,bncthd->tbhnrd", p.to(kv.dtype), kv)  # one batched product for all T
    return rearrange(bar, "t b h n r d -> t b h (n r) d")


@register_block("ls")
class LongShortBlock(MultiHeadBlock):
    """Transformer-LS attention: dynamic projection (long) + segment-wise sliding window (short) + DualLN.

    `q = W_q x`; local `k, v = LN_L(W_k x), LN_L(W_v x)` (LayerNorm over the full width, before the head split);
    global `k_bar, v_bar = LN_G(P^T W_k x), LN_G(P^T W_v x)` with `P = softmax_seq(W_P x)` (padding excluded);
    then `long_short_attention` (one softmax over global + window keys) and the output projection.

    Args:
        dim: width D.
        heads: attention heads (D divisible by heads).
        window: segment size w; a segment sees itself and w // 2 keys on each side.
        rank: rank r of the dynamic projection; when causal, the rank per segment of w positions (projections
            of fully past segments only; the paper's segment : r is about 16 : 1).
        conv_kernel: > 0 adds a depthwise convolution over V per head (kernel along the sequence, zero-init),
            left-padded when causal.
        cls: position 0 is a global CLS token (use with `head.pool = "cls"`): its key/value join the global
            keys and its query attends to every real position.
        causal, dropout, qkv_bias, device, dtype: as `MultiHeadBlock`.
    """

    def __init__(
        self,
        dim: int,
        *,
        window: int = 128,
        rank: int = 32,
        conv_kernel: int = 0,
        cls: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(dim, **kwargs)
        self.window = _check_window(window)
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be an int >= 1, got {rank!r}")
        if not isinstance(conv_kernel, int) or conv_kernel < 0:
            raise ValueError(f"conv_kernel must be an int >= 0 (0 = off), got {conv_kernel!r}")
        if cls and self.causal:
            raise ValueError("cls=True (a global CLS token) is for bidirectional models; the causal block has none")
        self.rank, self.conv_kernel, self.cls = rank, conv_kernel, bool(cls)
        f = dict(device=kwargs.get("device"), dtype=kwargs.get("dtype"))
        # One GEMM for W_q, W_k, W_v and W_P (the dynamic-projection logits, computed from the same input).
        self.qkv = nn.Linear(dim, 3 * dim + self.heads * rank, bias=kwargs.get("qkv_bias", True), **f)
        self.ln_local = nn.LayerNorm(dim, **f)  # DualLN: LN_L on window keys/values
        self.ln_global = nn.LayerNorm(dim, **f)  # DualLN: LN_G on projected keys/values
        self.conv = None
        if conv_kernel:
            self.conv = nn.Parameter(torch.zeros(self.heads, conv_kernel, **f))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool (True = real) -> (B, L, D)."""
        B, L, D = x.shape
        H = self.heads
        if mask is None:
            mask = torch.ones(B, L, dtype=torch.bool, device=x.device)
        proj = self.qkv(x)  # (B, L, 3D + H*r)
        q, kv, scores = proj.split([D, 2 * D, H * self.rank], dim=-1)
        kv_heads = rearrange(kv, "b l (t h d) -> b l t h d", t=2, h=H)
        scores = rearrange(scores, "b l (h r) -> b l h r", h=H)
        start = 1 if self.cls else 0
        seq_mask = mask[:, start:]
        proj_mask = None if bool(seq_mask.all()) else seq_mask  # no padding: skip the masking passes
        kg, vg = dynamic_projection(
            scores[:, start:], kv_heads[:, start:], proj_mask, self.window if self.causal else None
        )  # (B, H, R, d) each
        if self.cls:
            kg = torch.cat([rearrange(kv_heads[:, :1, 0], "b 1 h d -> b h 1 d"), kg], dim=2)
            vg = torch.cat([rearrange(kv_heads[:, :1, 1], "b 1 h d -> b h 1 d"), vg], dim=2)
        # DualLN: LN_G on the projected keys and values together, LN_L on the local ones together.
        g = self.ln_global(rearrange([kg, vg], "t b h r d -> b r t (h d)"))
        kg, vg = rearrange(g, "b r t (h d) -> t b h r d", h=H)
        loc = self.ln_local(rearrange(kv, "b l (t hd) -> b l t hd", t=2))
        kl, vl = rearrange(loc, "b l t (h d) -> t b h l d", h=H)
        qh = rearrange(q, "b l (h d) -> b h l d", h=H)
        y = long_short_attention(
            qh[:, :, start:], kl[:, :, start:], vl[:, :, start:], kg, vg, self.window, seq_mask, self.causal
        )
        if self.cls:
            # The CLS query attends to the global keys (its own among them) and to every real position.
            keys = torch.cat([kg, kl[:, :, 1:]], dim=2)
            vals = torch.cat([vg, vl[:, :, 1:]], dim=2)
            allowed = torch.cat([torch.ones_like(mask[:, :1]).expand(B, kg.shape[2]), seq_mask], dim=1)
            y0 = F.scaled_dot_product_attention(qh[:, :, :1], keys, vals, attn_mask=allowed[:, None, None, :])
            y = torch.cat([y0, y], dim=2)
        if self.conv is not None:
            y = y + self._conv_v(kv_heads[:, :, 1], mask)
        return self.drop(self.out(rearrange(y, "b h l d -> b l (h d)")))

    def _conv_v(self, v: Tensor, mask: Tensor) -> Tensor:
        """Depthwise convolution along the sequence, one kernel per head shared over its channels -> (B, H, L, d)."""
        B, L, H, d = v.shape
        kern = self.conv.shape[1]
        t = rearrange(v * mask[:, :, None, None].to(v.dtype), "b l h d -> b (h d) l")
        left = kern - 1 if self.causal else (kern - 1) // 2
        t = F.pad(t, (left, kern - 1 - left))
        weight = self.conv.repeat_interleave(d, dim=0)[:, None, :]  # (H*d, 1, kern)
        out = F.conv1d(t, weight.to(t.dtype), groups=H * d)  # (B, H*d, L)
        return rearrange(out, "b (h d) l -> b h l d", h=H)

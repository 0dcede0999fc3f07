"""Fused path: long-short attention on CUDA through PyTorch's FlexAttention (block-sparse, compiled).

Keys are laid out as `[k_global (r); k (L)]`; a mask_mod admits the global keys (when causal, only the groups of
fully past segments) and the segment-wise window. The block mask skips every tile outside the band, so work is
O(L * (window + r)). The specification is `multiseq.blocks.ls.long_short_attention_ref`; the dispatcher chooses
this path only on CUDA with FlexAttention available. Tests run it uncompiled on CPU (`compiled=False`).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


@lru_cache(maxsize=1)
def _compiled_flex():  # compiled once per process
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_long_short_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    k_global: Tensor,
    v_global: Tensor,
    window: int,
    key_padding_mask: Tensor | None = None,
    causal: bool = False,
    compiled: bool = True,
) -> Tensor:
    """Same contract as `long_short_attention`: q, k, v (B, H, L, d); k_global, v_global (B, H, r, d)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    B, H, L, d = q.shape
    r = k_global.shape[2]
    if L == 0:
        return q.clone()
    half = window // 2
    per = max(r // -(-L // window), 1) if causal else 1
    kpm = key_padding_mask
    keys = torch.cat([k_global, k], dim=2)
    values = torch.cat([v_global, v], dim=2)

    def mask_mod(b, h, qi, kj):
        s = qi // window
        j = kj - r
        is_global = kj < r
        glob = ((kj // per) < s) if causal else (kj >= 0)
        local = (j >= s * window - half) & (j < (s + 1) * window + half)
        if causal:
            local = local & (j <= qi)
        if kpm is not None:
            local = local & kpm[b, j.clamp(min=0)]
        return torch.where(is_global, glob, local)

    device = q.device
    block_mask = create_block_mask(mask_mod, B if kpm is not None else None, None, L, L + r, device=device)
    attend = _compiled_flex() if compiled else flex_attention
    out = attend(q, keys, values, block_mask=block_mask)
    # Rows that see no key at all (only possible for padded queries without global keys): zeros, as the reference.
    if kpm is not None and (r == 0 or causal):
        i = torch.arange(L, device=device)
        s = i // window
        lo = (s * window - half).clamp(min=0)
        hi = (i if causal else ((s + 1) * window + half - 1)).clamp(max=L - 1)
        csum = torch.nn.functional.pad(kpm.long().cumsum(-1), (1, 0))  # (B, L+1)
        count = csum[:, hi + 1] - csum[:, lo]
        if causal and r:
            count = count + (per * s)[None]  # visible global keys: per * s
        out = out * (count > 0)[:, None, :, None].to(out.dtype)
    return out

"""Fused path: sliding-window attention on CUDA through PyTorch's FlexAttention (block-sparse, compiled).

The specification is `multiseq.blocks.attention.local_attention_ref`; this path is chosen by the dispatcher only
on CUDA with FlexAttention available.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


@lru_cache(maxsize=1)
def _compiled_flex():  # compiled once per process
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_local_attention(
    q: Tensor, k: Tensor, v: Tensor, window: int, causal: bool = False, key_padding_mask: Tensor | None = None
) -> Tensor:
    """Same contract as `local_attention`: q, k, v (B, H, L, d), key_padding_mask (B, L) bool (True = real)."""
    from torch.nn.attention.flex_attention import create_block_mask

    B, H, L, d = q.shape
    half = window // 2
    kpm = key_padding_mask

    def mask_mod(b, h, qi, kj):
        band = ((kj <= qi) & (kj > qi - window)) if causal else ((qi - kj).abs() <= half)
        return band & kpm[b, kj] if kpm is not None else band

    block_mask = create_block_mask(mask_mod, B if kpm is not None else None, None, L, L, device=q.device)
    out = _compiled_flex()(q, k, v, block_mask=block_mask)
    if kpm is not None:
        # Rows that see no real key: zeros, as the reference.
        i = torch.arange(L, device=q.device)
        lo = (i - window + 1) if causal else (i - half)
        hi = i if causal else (i + half)
        csum = torch.nn.functional.pad(kpm.long().cumsum(-1), (1, 0))  # (B, L+1)
        count = csum[:, (hi.clamp(max=L - 1) + 1)] - csum[:, lo.clamp(min=0)]
        out = out * (count > 0)[:, None, :, None].to(out.dtype)
    return out

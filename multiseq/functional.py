"""Public functional ops, like `torch.nn.functional`. Each has a plain-PyTorch reference (`*_ref`) that is its
specification; fused GPU paths are chosen by `multiseq.kernels` when they can run."""

from multiseq.blocks.attention import (
    attention_ref,
    band_mask,
    local_attention,
    local_attention_ref,
    sdpa_attention,
)

__all__ = ["attention_ref", "band_mask", "local_attention", "local_attention_ref", "sdpa_attention"]

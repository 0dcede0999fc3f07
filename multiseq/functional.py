"""Public functional ops, like `torch.nn.functional`. Each has a plain-PyTorch reference (`*_ref`) that is its
specification; fused GPU paths are chosen by `multiseq.kernels` when they can run."""

from multiseq.blocks.attention import (
    attention_ref,
    band_mask,
    local_attention,
    local_attention_ref,
    sdpa_attention,
)
from multiseq.blocks.contextpool import context_pool, context_pool_ref
from multiseq.blocks.ls import long_short_attention, long_short_attention_ref
from multiseq.blocks.mega_ops import chunk_attention, chunk_attention_ref, ema, ema_ref, laplace
from multiseq.blocks.s4_kernels import (
    dplr_kernel,
    dplr_kernel_ref,
    fft_conv,
    fft_conv_ref,
    vandermonde_kernel,
    vandermonde_kernel_ref,
)

__all__ = [
    "dplr_kernel", "dplr_kernel_ref", "fft_conv", "fft_conv_ref", "vandermonde_kernel", "vandermonde_kernel_ref",
    "chunk_attention", "chunk_attention_ref", "ema", "ema_ref", "laplace",
    "attention_ref", "band_mask", "local_attention", "local_attention_ref", "sdpa_attention"]
__all__ += ["long_short_attention", "long_short_attention_ref"]
__all__ += ["context_pool", "context_pool_ref"]

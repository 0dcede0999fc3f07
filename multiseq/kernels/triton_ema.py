"""Fused path (Triton) of Mega's EMA convolution-kernel generation: `k[d, l] = sum_j w[d, j] * exp(l * logq[d, j])`,
forward and backward.

The specification is `multiseq.blocks.mega_ops.ema_kernel_ref`. The fused path never materialises the
(D, N, L) Vandermonde matrix: each program computes a block of lags for one channel from its N coefficients, and
the backward pass accumulates `dw[d, j] = sum_l g[d, l] q^l` and `dlogq[d, j] = w[d, j] sum_l g[d, l] l q^l`
block by block. The dispatcher uses it only on CUDA; on CPU it runs under `TRITON_INTERPRET=1` (set before this
module is imported) for tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _ema_kernel_fwd(W, LOGQ, K, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    d = tl.program_id(0)
    pl = tl.program_id(1)
    offs_n = tl.arange(0, BLOCK_N)
    offs_l = pl * BLOCK_L + tl.arange(0, BLOCK_L)
    nmask = offs_n < N
    w = tl.load(W + d * N + offs_n, mask=nmask, other=0.0).to(tl.float32)
    lq = tl.load(LOGQ + d * N + offs_n, mask=nmask, other=0.0).to(tl.float32)
    pos = offs_l.to(tl.float32)
    vand = tl.exp(pos[:, None] * lq[None, :])  # (BLOCK_L, BLOCK_N)
    k = tl.sum(vand * w[None, :], axis=1)
    tl.store(K + d * L + offs_l, k, mask=offs_l < L)


@triton.jit
def _ema_kernel_bwd(G, W, LOGQ, DW, DLOGQ, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    d = tl.program_id(0)
    offs_n = tl.arange(0, BLOCK_N)
    nmask = offs_n < N
    w = tl.load(W + d * N + offs_n, mask=nmask, other=0.0).to(tl.float32)
    lq = tl.load(LOGQ + d * N + offs_n, mask=nmask, other=0.0).to(tl.float32)
    acc_w = tl.zeros((BLOCK_N,), dtype=tl.float32)
    acc_q = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for start in range(0, L, BLOCK_L):
        offs_l = start + tl.arange(0, BLOCK_L)
        g = tl.load(G + d * L + offs_l, mask=offs_l < L, other=0.0).to(tl.float32)
        pos = offs_l.to(tl.float32)
        vand = tl.exp(pos[:, None] * lq[None, :]) * g[:, None]  # (BLOCK_L, BLOCK_N)
        acc_w += tl.sum(vand, axis=0)
        acc_q += tl.sum(vand * pos[:, None], axis=0)
    tl.store(DW + d * N + offs_n, acc_w, mask=nmask)
    tl.store(DLOGQ + d * N + offs_n, acc_q * w, mask=nmask)


def _block_n(N: int) -> int:
    return max(2, triton.next_power_of_2(N))


class _EmaKernel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: Tensor, logq: Tensor, length: int) -> Tensor:  # type: ignore[override]
        D, N = w.shape
        wc, lqc = w.contiguous().float(), logq.contiguous().float()
        k = torch.empty(D, length, device=w.device, dtype=torch.float32)
        block_l = 128
        _ema_kernel_fwd[(D, triton.cdiv(length, block_l))](wc, lqc, k, N, length, BLOCK_N=_block_n(N), BLOCK_L=block_l)
        ctx.save_for_backward(wc, lqc)
        ctx.in_dtype = w.dtype
        return k.to(w.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        wc, lqc = ctx.saved_tensors
        D, N = wc.shape
        gc = g.contiguous().float()
        dw = torch.empty_like(wc)
        dlq = torch.empty_like(lqc)
        _ema_kernel_bwd[(D,)](gc, wc, lqc, dw, dlq, N, gc.shape[1], BLOCK_N=_block_n(N), BLOCK_L=128)
        return dw.to(ctx.in_dtype), dlq.to(ctx.in_dtype), None


def triton_ema_kernel(w: Tensor, logq: Tensor, length: int) -> Tensor:
    """Fused `ema_kernel`: w, logq (D, N) -> (D, length), computed in float32, returned in w's dtype."""
    if w.dim() != 2 or logq.shape != w.shape:
        raise ValueError(f"w and logq must share shape (D, N); got {tuple(w.shape)} and {tuple(logq.shape)}")
    return _EmaKernel.apply(w, logq, int(length))

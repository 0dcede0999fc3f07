"""Fused path: banded ContextPool in Triton: one pass over each query block's band with an online softmax.

Pooling is `y_i = softmax_j(log w_j - d(i, j)^2 * prec_i) @ x` over the band (`prec_i = 1 / (2 sigma_i^2)`), so the
kernels follow flash-attention's structure with the logits computed from positions instead of q . k:

* forward: per (query block, batch): loop over the key tiles of the band, online softmax, store y and the row
  log-sum-exp;
* backward: one kernel per query block gives d prec (sigma's gradient); one per key block gives dx and d log w,
  recomputing the probabilities from the stored log-sum-exp. Memory O(L * D), no band matrix in memory.

The specification is `multiseq.blocks.contextpool.context_pool_ref`. The dispatcher uses this path only on CUDA;
on CPU it runs only under `TRITON_INTERPRET=1` (set before this module is imported), which the tests use.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

_BLOCK_M = 32
_BLOCK_N = 32
_MAX_PRECISION = 1e12


@triton.jit
def _logits(offs_m, offs_n, prec, logw, qmask, kmask, L, C, R, CAUSAL: tl.constexpr):
    # (BLOCK_M, BLOCK_N) logits and the allowed pattern of one (query tile, key tile) pair.
    dr = offs_n[None, :] // C - offs_m[:, None] // C
    dc = offs_n[None, :] % C - offs_m[:, None] % C
    allowed = (dr <= R) & (dr >= -R) & (dc <= R) & (dc >= -R)
    allowed = allowed & (offs_m[:, None] < L) & (offs_n[None, :] < L) & qmask[:, None] & kmask[None, :]
    if CAUSAL:
        allowed = allowed & (offs_n[None, :] <= offs_m[:, None])
    dist2 = (dr * dr + dc * dc).to(tl.float32)
    logits = logw[None, :] - dist2 * prec[:, None]
    return logits, allowed, dist2


@triton.jit
def _fwd_kernel(
    X, LOGW, PREC, MASK, Y, LSE, L, D, C, R,
    stride_xb, stride_xl, stride_yb, stride_yl,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_m = tl.program_id(0)
    b = tl.program_id(1)
    m0 = pid_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    in_m = offs_m < L
    prec = tl.load(PREC + b * L + offs_m, mask=in_m, other=0.0)
    qmask = tl.load(MASK + b * L + offs_m, mask=in_m, other=0) != 0
    last = tl.minimum(m0 + BLOCK_M, L) - 1
    lo = tl.maximum((m0 // C - R) * C, 0)
    if CAUSAL:
        hi = last + 1
    else:
        hi = tl.minimum((last // C + R + 1) * C, L)
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for start in range(lo, hi, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        in_n = offs_n < L
        logw = tl.load(LOGW + b * L + offs_n, mask=in_n, other=0.0)
        kmask = tl.load(MASK + b * L + offs_n, mask=in_n, other=0) != 0
        logits, allowed, _ = _logits(offs_m, offs_n, prec, logw, qmask, kmask, L, C, R, CAUSAL)
        logits = tl.where(allowed, logits, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(logits, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.where(allowed, tl.exp(logits - m_safe[:, None]), 0.0)
        alpha = tl.exp(m_i - m_safe)
        x = tl.load(
            X + b * stride_xb + offs_n[:, None] * stride_xl + offs_d[None, :],
            mask=in_n[:, None] & (offs_d[None, :] < D), other=0.0,
        ).to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p, x, input_precision="ieee")
        l_i = l_i * alpha + tl.sum(p, 1)
        m_i = m_new
    ok = l_i > 0
    y = acc / tl.where(ok, l_i, 1.0)[:, None]
    y = tl.where(ok[:, None] & qmask[:, None], y, 0.0)
    tl.store(
        Y + b * stride_yb + offs_m[:, None] * stride_yl + offs_d[None, :],
        y.to(Y.dtype.element_ty), mask=in_m[:, None] & (offs_d[None, :] < D),
    )
    lse = tl.where(ok, m_i + tl.log(tl.where(ok, l_i, 1.0)), 0.0)
    tl.store(LSE + b * L + offs_m, lse, mask=in_m)


@triton.jit
def _bwd_query_kernel(
    X, G, LOGW, PREC, MASK, LSE, DELTA, DPREC, L, D, C, R,
    stride_xb, stride_xl, stride_gb, stride_gl,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # d prec_i = -sum_j p_ij (g_i . x_j - delta_i) dist2_ij, delta_i = g_i . y_i.
    pid_m = tl.program_id(0)
    b = tl.program_id(1)
    m0 = pid_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    in_m = offs_m < L
    prec = tl.load(PREC + b * L + offs_m, mask=in_m, other=0.0)
    qmask = tl.load(MASK + b * L + offs_m, mask=in_m, other=0) != 0
    lse = tl.load(LSE + b * L + offs_m, mask=in_m, other=0.0)
    delta = tl.load(DELTA + b * L + offs_m, mask=in_m, other=0.0)
    g = tl.load(
        G + b * stride_gb + offs_m[:, None] * stride_gl + offs_d[None, :],
        mask=in_m[:, None] & (offs_d[None, :] < D), other=0.0,
    ).to(tl.float32)
    last = tl.minimum(m0 + BLOCK_M, L) - 1
    lo = tl.maximum((m0 // C - R) * C, 0)
    if CAUSAL:
        hi = last + 1
    else:
        hi = tl.minimum((last // C + R + 1) * C, L)
    dprec = tl.zeros((BLOCK_M,), tl.float32)
    for start in range(lo, hi, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        in_n = offs_n < L
        logw = tl.load(LOGW + b * L + offs_n, mask=in_n, other=0.0)
        kmask = tl.load(MASK + b * L + offs_n, mask=in_n, other=0) != 0
        logits, allowed, dist2 = _logits(offs_m, offs_n, prec, logw, qmask, kmask, L, C, R, CAUSAL)
        p = tl.where(allowed, tl.exp(logits - lse[:, None]), 0.0)
        x = tl.load(
            X + b * stride_xb + offs_n[:, None] * stride_xl + offs_d[None, :],
            mask=in_n[:, None] & (offs_d[None, :] < D), other=0.0,
        ).to(tl.float32)
        dp = tl.dot(g, tl.trans(x), input_precision="ieee")
        da = p * (dp - delta[:, None])
        dprec -= tl.sum(da * dist2, 1)
    tl.store(DPREC + b * L + offs_m, dprec, mask=in_m)


@triton.jit
def _bwd_key_kernel(
    X, G, LOGW, PREC, MASK, LSE, DELTA, DX, DLOGW, L, D, C, R,
    stride_xb, stride_xl, stride_gb, stride_gl, stride_dxb, stride_dxl,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # dx_j = sum_i p_ij g_i ; d log w_j = sum_i p_ij (g_i . x_j - delta_i).
    pid_n = tl.program_id(0)
    b = tl.program_id(1)
    n0 = pid_n * BLOCK_N
    offs_n = n0 + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    in_n = offs_n < L
    logw = tl.load(LOGW + b * L + offs_n, mask=in_n, other=0.0)
    kmask = tl.load(MASK + b * L + offs_n, mask=in_n, other=0) != 0
    x = tl.load(
        X + b * stride_xb + offs_n[:, None] * stride_xl + offs_d[None, :],
        mask=in_n[:, None] & (offs_d[None, :] < D), other=0.0,
    ).to(tl.float32)
    last = tl.minimum(n0 + BLOCK_N, L) - 1
    if CAUSAL:
        lo = n0
        hi = tl.minimum(last + R + 1, L)
    else:
        lo = tl.maximum((n0 // C - R) * C, 0)
        hi = tl.minimum((last // C + R + 1) * C, L)
    dx = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    dlogw = tl.zeros((BLOCK_N,), tl.float32)
    for start in range(lo, hi, BLOCK_M):
        offs_m = start + tl.arange(0, BLOCK_M)
        in_m = offs_m < L
        prec = tl.load(PREC + b * L + offs_m, mask=in_m, other=0.0)
        qmask = tl.load(MASK + b * L + offs_m, mask=in_m, other=0) != 0
        lse = tl.load(LSE + b * L + offs_m, mask=in_m, other=0.0)
        delta = tl.load(DELTA + b * L + offs_m, mask=in_m, other=0.0)
        g = tl.load(
            G + b * stride_gb + offs_m[:, None] * stride_gl + offs_d[None, :],
            mask=in_m[:, None] & (offs_d[None, :] < D), other=0.0,
        ).to(tl.float32)
        logits, allowed, _ = _logits(offs_m, offs_n, prec, logw, qmask, kmask, L, C, R, CAUSAL)
        p = tl.where(allowed, tl.exp(logits - lse[:, None]), 0.0)  # (BLOCK_M, BLOCK_N)
        dx += tl.dot(tl.trans(p), g, input_precision="ieee")
        dp = tl.dot(g, tl.trans(x), input_precision="ieee")
        dlogw += tl.sum(p * (dp - delta[:, None]), 0)
    tl.store(
        DX + b * stride_dxb + offs_n[:, None] * stride_dxl + offs_d[None, :],
        dx.to(DX.dtype.element_ty), mask=in_n[:, None] & (offs_d[None, :] < D),
    )
    tl.store(DLOGW + b * L + offs_n, dlogw, mask=in_n)


def _block_d(D: int) -> int:
    return max(16, triton.next_power_of_2(D))


class _ContextPoolFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, logw, prec, mask, radius, cols, causal):  # type: ignore[override]
        B, L, D = x.shape
        x = x.contiguous()
        logw32, prec32 = logw.float().contiguous(), prec.float().contiguous()
        m8 = mask.to(torch.int8).contiguous()
        y = torch.empty_like(x)
        lse = torch.empty(B, L, device=x.device, dtype=torch.float32)
        grid = (triton.cdiv(L, _BLOCK_M), B)
        _fwd_kernel[grid](
            x, logw32, prec32, m8, y, lse, L, D, cols, radius,
            x.stride(0), x.stride(1), y.stride(0), y.stride(1),
            CAUSAL=causal, BLOCK_M=_BLOCK_M, BLOCK_N=_BLOCK_N, BLOCK_D=_block_d(D),
        )
        ctx.save_for_backward(x, logw32, prec32, m8, y, lse)
        ctx.radius, ctx.cols, ctx.causal = radius, cols, causal
        ctx.dtypes = (logw.dtype, prec.dtype)
        return y

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        x, logw, prec, m8, y, lse = ctx.saved_tensors
        B, L, D = x.shape
        g = (gy * m8[..., None].to(gy.dtype)).contiguous()
        delta = (g.float() * y.float()).sum(-1).contiguous()
        dprec = torch.empty(B, L, device=x.device, dtype=torch.float32)
        dlogw = torch.empty(B, L, device=x.device, dtype=torch.float32)
        dx = torch.empty_like(x)
        common = dict(CAUSAL=ctx.causal, BLOCK_M=_BLOCK_M, BLOCK_N=_BLOCK_N, BLOCK_D=_block_d(D))
        _bwd_query_kernel[(triton.cdiv(L, _BLOCK_M), B)](
            x, g, logw, prec, m8, lse, delta, dprec, L, D, ctx.cols, ctx.radius,
            x.stride(0), x.stride(1), g.stride(0), g.stride(1), **common,
        )
        _bwd_key_kernel[(triton.cdiv(L, _BLOCK_N), B)](
            x, g, logw, prec, m8, lse, delta, dx, dlogw, L, D, ctx.cols, ctx.radius,
            x.stride(0), x.stride(1), g.stride(0), g.stride(1), dx.stride(0), dx.stride(1), **common,
        )
        return dx, dlogw.to(ctx.dtypes[0]), dprec.to(ctx.dtypes[1]), None, None, None, None


def triton_context_pool(
    x: Tensor,
    log_weights: Tensor,
    sigma: Tensor,
    radius: int,
    key_padding_mask: Tensor | None = None,
    *,
    cols: int = 1,
    causal: bool = False,
) -> Tensor:
    """Same contract as `multiseq.blocks.contextpool.context_pool_log`: x (B, L, D), log_weights and sigma (B, L),
    key_padding_mask (B, L) bool (True = real). Accumulates in float32."""
    B, L, _ = x.shape
    if key_padding_mask is None:
        key_padding_mask = torch.ones(B, L, dtype=torch.bool, device=x.device)
    # The precision 1 / (2 sigma^2) is formed here so autograd carries its gradient back to sigma (and the cap).
    prec = (0.5 / sigma.square()).clamp(max=_MAX_PRECISION)
    return _ContextPoolFn.apply(x, log_weights, prec, key_padding_mask, int(radius), int(cols), bool(causal))

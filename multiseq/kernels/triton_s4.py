"""Triton kernels for the S4 family: the log-Vandermonde (S4D / DSS) kernel, forward and backward.

`K[h, l] = 2 Re sum_n C[h, n] exp(a[h, n] l)` with one program per (channel h, block of l) summing over the
modes in registers: memory is the output only, never (H, N, L). The backward kernel runs one program per
(h, block of n) and loops over l, giving (with PyTorch's convention for complex gradients, grad = dL/dRe + i dL/dIm)

    grad_C[h, n] = 2 sum_l g[h, l] conj(w^l),     grad_a[h, n] = 2 sum_l g[h, l] l conj(C w^l),   w = exp(a).

Real exp/cos/sin throughout (no complex dtype in Triton). The specification is
`multiseq.blocks.s4_kernels.vandermonde_kernel_ref`. On CPU this module runs only under `TRITON_INTERPRET=1`
(set before import); the dispatcher picks it only on CUDA.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _vand_fwd(AR, AI, CR, CI, OUT, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    h = tl.program_id(0)
    lb = tl.program_id(1)
    offs_l = lb * BLOCK_L + tl.arange(0, BLOCK_L)
    ell = offs_l.to(tl.float32)
    acc = tl.zeros((BLOCK_L,), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        nm = offs_n < N
        ar = tl.load(AR + h * N + offs_n, mask=nm, other=0.0)
        ai = tl.load(AI + h * N + offs_n, mask=nm, other=0.0)
        cr = tl.load(CR + h * N + offs_n, mask=nm, other=0.0)
        ci = tl.load(CI + h * N + offs_n, mask=nm, other=0.0)
        mag = tl.exp(ar[:, None] * ell[None, :])  # (BLOCK_N, BLOCK_L)
        ang = ai[:, None] * ell[None, :]
        term = (cr[:, None] * tl.cos(ang) - ci[:, None] * tl.sin(ang)) * mag
        acc += tl.sum(term, axis=0)
    tl.store(OUT + h * L + offs_l, 2.0 * acc, mask=offs_l < L)


@triton.jit
def _vand_bwd(AR, AI, CR, CI, G, GAR, GAI, GCR, GCI, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    h = tl.program_id(0)
    nb = tl.program_id(1)
    offs_n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = offs_n < N
    ar = tl.load(AR + h * N + offs_n, mask=nm, other=0.0)
    ai = tl.load(AI + h * N + offs_n, mask=nm, other=0.0)
    cr = tl.load(CR + h * N + offs_n, mask=nm, other=0.0)
    ci = tl.load(CI + h * N + offs_n, mask=nm, other=0.0)
    s_wr = tl.zeros((BLOCK_N,), dtype=tl.float32)  # sum_l g Re(w^l)
    s_wi = tl.zeros((BLOCK_N,), dtype=tl.float32)  # sum_l g Im(w^l)
    s_lwr = tl.zeros((BLOCK_N,), dtype=tl.float32)  # sum_l g l Re(w^l)
    s_lwi = tl.zeros((BLOCK_N,), dtype=tl.float32)  # sum_l g l Im(w^l)
    for l0 in range(0, L, BLOCK_L):
        offs_l = l0 + tl.arange(0, BLOCK_L)
        g = tl.load(G + h * L + offs_l, mask=offs_l < L, other=0.0)
        ell = offs_l.to(tl.float32)
        mag = tl.exp(ar[:, None] * ell[None, :])
        ang = ai[:, None] * ell[None, :]
        wr = mag * tl.cos(ang) * g[None, :]
        wi = mag * tl.sin(ang) * g[None, :]
        s_wr += tl.sum(wr, axis=1)
        s_wi += tl.sum(wi, axis=1)
        s_lwr += tl.sum(wr * ell[None, :], axis=1)
        s_lwi += tl.sum(wi * ell[None, :], axis=1)
    tl.store(GCR + h * N + offs_n, 2.0 * s_wr, mask=nm)
    tl.store(GCI + h * N + offs_n, -2.0 * s_wi, mask=nm)
    # C * sum g l w = (cr + i ci)(s_lwr + i s_lwi); grad_a = 2 conj(that).
    tl.store(GAR + h * N + offs_n, 2.0 * (cr * s_lwr - ci * s_lwi), mask=nm)
    tl.store(GAI + h * N + offs_n, -2.0 * (cr * s_lwi + ci * s_lwr), mask=nm)


def _blocks(N: int) -> tuple[int, int]:
    return max(16, min(64, triton.next_power_of_2(N))), 128


class _Vandermonde(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ar: Tensor, ai: Tensor, cr: Tensor, ci: Tensor, L: int) -> Tensor:
        H, N = ar.shape
        ar, ai, cr, ci = (t.contiguous().float() for t in (ar, ai, cr, ci))
        out = torch.empty(H, L, device=ar.device, dtype=torch.float32)
        bn, bl = _blocks(N)
        if L > 0:
            _vand_fwd[(H, triton.cdiv(L, bl))](ar, ai, cr, ci, out, N, L, BLOCK_N=bn, BLOCK_L=bl)
        ctx.save_for_backward(ar, ai, cr, ci)
        ctx.L = L
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        ar, ai, cr, ci = ctx.saved_tensors
        H, N = ar.shape
        grads = [torch.zeros_like(ar) for _ in range(4)]
        bn, bl = _blocks(N)
        if ctx.L > 0:
            _vand_bwd[(H, triton.cdiv(N, bn))](
                ar, ai, cr, ci, g.contiguous().float(), *grads, N, ctx.L, BLOCK_N=bn, BLOCK_L=bl
            )
        return grads[0], grads[1], grads[2], grads[3], None


def triton_vandermonde_kernel(log_dA: Tensor, C: Tensor, L: int) -> Tensor:
    """Fused `vandermonde_kernel`: log_dA, C (H, N) complex -> (H, L) real (float32 arithmetic)."""
    K = _Vandermonde.apply(log_dA.real, log_dA.imag, C.real, C.imag, L)
    return K.to(log_dA.real.dtype)

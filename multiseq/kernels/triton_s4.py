"""Fused path (Triton) of the S4 family's convolution kernel: the log-Vandermonde (S4D / DSS) kernel `K`, forward
and backward.

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


# ---------------------------------------------------------------------------------------------------------------
# Cauchy sum of the S4 (DPLR) kernel: r[a, h, k] = sum_n v[a, h, n] / (alpha[k] - beta[k] x[h, n]), a = 0..3
# ---------------------------------------------------------------------------------------------------------------


@triton.jit
def _cauchy_fwd(VR, VI, XR, XI, AR, AI, BR, BI, OR, OI, H, N, K, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    h = tl.program_id(0)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    km = offs_k < K
    ar = tl.load(AR + offs_k, mask=km, other=1.0)
    ai = tl.load(AI + offs_k, mask=km, other=0.0)
    br = tl.load(BR + offs_k, mask=km, other=0.0)
    bi = tl.load(BI + offs_k, mask=km, other=0.0)
    for a in tl.static_range(4):
        acc_r = tl.zeros((BLOCK_K,), dtype=tl.float32)
        acc_i = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for n0 in range(0, N, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            nm = offs_n < N
            xr = tl.load(XR + h * N + offs_n, mask=nm, other=0.0)
            xi = tl.load(XI + h * N + offs_n, mask=nm, other=0.0)
            vr = tl.load(VR + (a * H + h) * N + offs_n, mask=nm, other=0.0)
            vi = tl.load(VI + (a * H + h) * N + offs_n, mask=nm, other=0.0)
            # den = alpha - beta x, (BLOCK_N, BLOCK_K)
            dr = ar[None, :] - (br[None, :] * xr[:, None] - bi[None, :] * xi[:, None])
            di = ai[None, :] - (br[None, :] * xi[:, None] + bi[None, :] * xr[:, None])
            # Padded modes (n >= N) contribute nothing, even where alpha = 0 would make their denominator vanish.
            inv = tl.where(nm[:, None], 1.0 / (dr * dr + di * di), 0.0)
            acc_r += tl.sum((vr[:, None] * dr + vi[:, None] * di) * inv, axis=0)
            acc_i += tl.sum((vi[:, None] * dr - vr[:, None] * di) * inv, axis=0)
        tl.store(OR + (a * H + h) * K + offs_k, acc_r, mask=km)
        tl.store(OI + (a * H + h) * K + offs_k, acc_i, mask=km)


@triton.jit
def _cauchy_bwd(VR, VI, XR, XI, AR, AI, BR, BI, GR, GI, GVR, GVI, GXR, GXI, H, N, K,
                BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    h = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = offs_n < N
    xr = tl.load(XR + h * N + offs_n, mask=nm, other=0.0)
    xi = tl.load(XI + h * N + offs_n, mask=nm, other=0.0)
    gx_r = tl.zeros((BLOCK_N,), dtype=tl.float32)
    gx_i = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for a in tl.static_range(4):
        vr = tl.load(VR + (a * H + h) * N + offs_n, mask=nm, other=0.0)
        vi = tl.load(VI + (a * H + h) * N + offs_n, mask=nm, other=0.0)
        gv_r = tl.zeros((BLOCK_N,), dtype=tl.float32)
        gv_i = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            km = offs_k < K
            ar = tl.load(AR + offs_k, mask=km, other=1.0)
            ai = tl.load(AI + offs_k, mask=km, other=0.0)
            br = tl.load(BR + offs_k, mask=km, other=0.0)
            bi = tl.load(BI + offs_k, mask=km, other=0.0)
            gr = tl.load(GR + (a * H + h) * K + offs_k, mask=km, other=0.0)
            gi = tl.load(GI + (a * H + h) * K + offs_k, mask=km, other=0.0)
            dr = ar[None, :] - (br[None, :] * xr[:, None] - bi[None, :] * xi[:, None])
            di = ai[None, :] - (br[None, :] * xi[:, None] + bi[None, :] * xr[:, None])
            inv = 1.0 / (dr * dr + di * di)
            wr = dr * inv  # conj(1/den) = den / |den|^2
            wi = di * inv
            # grad_v += g conj(w)... with conj(1/den) = (wr + i wi)
            gv_r += tl.sum(gr[None, :] * wr - gi[None, :] * wi, axis=1)
            gv_i += tl.sum(gr[None, :] * wi + gi[None, :] * wr, axis=1)
            # grad_x += g conj(v) conj(beta) conj(1/den)^2
            sr = gr[None, :] * vr[:, None] + gi[None, :] * vi[:, None]  # g conj(v)
            si = gi[None, :] * vr[:, None] - gr[None, :] * vi[:, None]
            w2r = wr * wr - wi * wi
            w2i = 2.0 * wr * wi
            tr = br[None, :] * w2r + bi[None, :] * w2i  # conj(beta) * w^2
            ti = br[None, :] * w2i - bi[None, :] * w2r
            gx_r += tl.sum(sr * tr - si * ti, axis=1)
            gx_i += tl.sum(sr * ti + si * tr, axis=1)
        tl.store(GVR + (a * H + h) * N + offs_n, gv_r, mask=nm)
        tl.store(GVI + (a * H + h) * N + offs_n, gv_i, mask=nm)
    tl.store(GXR + h * N + offs_n, gx_r, mask=nm)
    tl.store(GXI + h * N + offs_n, gx_i, mask=nm)


def _parts(t: Tensor) -> tuple[Tensor, Tensor]:
    return t.real.contiguous().float(), t.imag.contiguous().float()


class _Cauchy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: Tensor, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        A, H, N = v.shape
        K = alpha.shape[0]
        if A != 4:
            raise ValueError(f"the fused Cauchy sum takes exactly 4 numerators, got {A}")
        args = (*_parts(v), *_parts(x), *_parts(alpha), *_parts(beta))
        out_r = torch.empty(A, H, K, device=v.device, dtype=torch.float32)
        out_i = torch.empty_like(out_r)
        bn, bk = max(16, min(32, triton.next_power_of_2(N))), 64
        _cauchy_fwd[(H, triton.cdiv(K, bk))](*args, out_r, out_i, H, N, K, BLOCK_N=bn, BLOCK_K=bk)
        ctx.save_for_backward(*args)
        ctx.dims, ctx.dtype = (H, N, K), v.dtype
        return torch.complex(out_r, out_i).to(v.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        args = ctx.saved_tensors
        H, N, K = ctx.dims
        gv_r = torch.empty(4, H, N, device=g.device, dtype=torch.float32)
        gv_i, gx_r, gx_i = torch.empty_like(gv_r), gv_r.new_empty(H, N), gv_r.new_empty(H, N)
        bn, bk = max(16, min(32, triton.next_power_of_2(N))), 64
        _cauchy_bwd[(H, triton.cdiv(N, bn))](*args, *_parts(g), gv_r, gv_i, gx_r, gx_i, H, N, K,
                                             BLOCK_N=bn, BLOCK_K=bk)
        return torch.complex(gv_r, gv_i).to(ctx.dtype), torch.complex(gx_r, gx_i).to(ctx.dtype), None, None


def triton_cauchy(v: Tensor, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """Fused Cauchy sum `r[a, h, k] = sum_n v[a, h, n] / (alpha[k] - beta[k] x[h, n])`.

    v: (4, H, N), x: (H, N), alpha, beta: (K,) complex -> (4, H, K) complex (float32 arithmetic). The reference
    is `multiseq.blocks.s4_kernels._cauchy_chunk`; alpha and beta receive no gradient (they are roots of unity).
    """
    return _Cauchy.apply(v, x, alpha, beta)

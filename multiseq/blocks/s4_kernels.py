"""State-space convolution kernels (S4 / S4D / DSS) and the FFT long convolution, with their references.

* `vandermonde_kernel(log_dA, C, L)`: `K[h, l] = 2 Re sum_n C[h, n] exp(log_dA[h, n] l)`, the diagonal (S4D/DSS)
  kernel. The CPU path factors `l = i * c + j` so that `exp(a l) = exp(a i c) exp(a j)`: two small tables of
  transcendentals, `(H, N, L/c)` and `(H, N, c)` with `c ~ sqrt(L)`, joined by one batched matmul. Memory is
  O(H * L) plus O(H * N * sqrt(L)), never the (H, N, L) tensor, and autograd through it stays as small.
* `dplr_kernel(Lambda, P, B, C, dt, L)`: the S4 (DPLR) kernel of the bilinear discretisation, by the truncated
  generating function at the roots of unity, a Cauchy sum over the diagonal and the Woodbury correction for the
  low-rank term, then an inverse FFT.
* `fft_conv(u, K, D, bidirectional)`: the long convolution through `rfft` at the next fast size >= 2L.

Each op has a `_ref` (dense, complex128-friendly, no cleverness) that is its specification.
"""

from __future__ import annotations

import contextlib
import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor

from multiseq.blocks._fft import next_fast_len

# ---------------------------------------------------------------------------------------------------------------
# Log-Vandermonde (diagonal SSM) kernel
# ---------------------------------------------------------------------------------------------------------------


def _check_vandermonde(log_dA: Tensor, C: Tensor, L: int) -> None:
    if not (log_dA.is_complex() and C.is_complex()):
        raise TypeError(f"log_dA and C must be complex tensors, got {log_dA.dtype} and {C.dtype}")
    if log_dA.dim() != 2 or log_dA.shape != C.shape:
        raise ValueError(f"log_dA and C must share shape (H, N); got {tuple(log_dA.shape)} and {tuple(C.shape)}")
    if isinstance(L, bool) or not isinstance(L, int) or L < 0:
        raise ValueError(f"L must be an int >= 0, got {L!r}")


def vandermonde_kernel_ref(log_dA: Tensor, C: Tensor, L: int) -> Tensor:
    """Naive log-Vandermonde product (materialises (H, N, L)); the specification of `vandermonde_kernel`.

    Args:
        log_dA: (H, N) complex, log of the discrete state multipliers (`dt * A` for ZOH).
        C: (H, N) complex output coefficients (already multiplied by the discretised B).
        L: kernel length.

    Returns:
        (H, L) real: `K[h, l] = 2 Re sum_n C[h, n] exp(log_dA[h, n] * l)`.
    """
    _check_vandermonde(log_dA, C, L)
    ell = torch.arange(L, device=log_dA.device, dtype=log_dA.real.dtype)
    powers = torch.exp(log_dA[..., None] * ell)  # (H, N, L)
    return 2 * torch.einsum("hn,hnl->hl", C, powers).real


def _exp_table(a: Tensor, steps: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of exp(a * steps) via real exp/cos/sin (faster than complex exp on CPU).

    a: (H, N) complex, steps: (S,) real -> two (H, N, S) real tensors.
    """
    mag = torch.exp(a.real[..., None] * steps)
    ang = a.imag[..., None] * steps
    return mag * torch.cos(ang), mag * torch.sin(ang)


def vandermonde_kernel(log_dA: Tensor, C: Tensor, L: int, chunk: int | None = None) -> Tensor:
    """Diagonal SSM kernel `K[h, l] = 2 Re sum_n C[h, n] exp(log_dA[h, n] l)`, computed in factored chunks.

    On CUDA with Triton available (and `MULTISEQ_KERNELS` not `off`) the fused Triton kernel runs instead.

    Args:
        log_dA: (H, N) complex.
        C: (H, N) complex.
        L: kernel length.
        chunk: inner chunk length c (default ~sqrt(L), a multiple of 8); memory O(H N (L/c + c)).

    Returns:
        (H, L) real, in the real dtype of `log_dA`.
    """
    _check_vandermonde(log_dA, C, L)
    from multiseq.kernels import use_fused

    if use_fused("vandermonde_kernel", log_dA):
        from multiseq.kernels.triton_s4 import triton_vandermonde_kernel

        return triton_vandermonde_kernel(log_dA, C, L)
    H, N = log_dA.shape
    if L == 0:
        return log_dA.real.new_zeros(H, 0)
    c = chunk or max(8, 8 * round(math.sqrt(L) / 8))
    c = min(c, L)
    n_outer = -(-L // c)
    real_dtype = log_dA.real.dtype
    inner = torch.arange(c, device=log_dA.device, dtype=real_dtype)
    outer = torch.arange(n_outer, device=log_dA.device, dtype=real_dtype) * c
    tr, ti = _exp_table(log_dA, inner)  # (H, N, c): exp(a j)
    orr, oi = _exp_table(log_dA, outer)  # (H, N, n_outer): exp(a i c)
    # Coefficients per outer step: C exp(a i c), as [Re, -Im] so that Re(x y) = [Re x, -Im x] . [Re y, Im y].
    cr, ci = C.real[..., None], C.imag[..., None]
    coef = torch.cat([cr * orr - ci * oi, -(cr * oi + ci * orr)], dim=1)  # (H, 2N, n_outer)
    table = torch.cat([tr, ti], dim=1)  # (H, 2N, c)
    K = torch.bmm(coef.transpose(1, 2), table)  # (H, n_outer, c)
    return 2 * K.reshape(H, n_outer * c)[:, :L]


# ---------------------------------------------------------------------------------------------------------------
# FFT convolution
# ---------------------------------------------------------------------------------------------------------------


def _check_conv(u: Tensor, K: Tensor, D: Tensor | None, bidirectional: bool) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must have shape (B, H, L), got {tuple(u.shape)}")
    want = 3 if bidirectional else 2
    if K.dim() != want or K.shape[-2] != u.shape[1] or (bidirectional and K.shape[0] != 2):
        shape = "(2, H, Lk)" if bidirectional else "(H, Lk)"
        raise ValueError(f"K must have shape {shape} with H = {u.shape[1]}, got {tuple(K.shape)}")
    if D is not None and D.shape != (u.shape[1],):
        raise ValueError(f"D must have shape (H,) = ({u.shape[1]},), got {tuple(D.shape)}")


def fft_conv_ref(u: Tensor, K: Tensor, D: Tensor | None = None, bidirectional: bool = False) -> Tensor:
    """Direct (Toeplitz-matrix) convolution; the specification of `fft_conv`. O(L^2) memory.

    Causal: `y[t] = sum_{s <= t} K[t - s] u[s]`. Bidirectional with `K = (k0, k1)`:
    `y[t] = sum_{s <= t} k0[t - s] u[s] + sum_{s > t} k1[s - t - 1] u[s]`. Plus `D * u`.
    """
    _check_conv(u, K, D, bidirectional)
    L = u.shape[-1]
    t = torch.arange(L, device=u.device)
    lag = t[:, None] - t[None, :]  # (L, L): t - s
    k0 = K[0] if bidirectional else K
    k0 = F.pad(k0, (0, max(0, L - k0.shape[-1])))
    T = torch.where(lag >= 0, k0[:, lag.clamp(min=0)], torch.zeros((), dtype=K.dtype, device=K.device))
    if bidirectional:
        k1 = F.pad(K[1], (0, max(0, L - K.shape[-1])))
        T = T + torch.where(lag < 0, k1[:, (-lag - 1).clamp(min=0)], torch.zeros((), dtype=K.dtype, device=K.device))
    y = torch.einsum("hts,bhs->bht", T, u)
    if D is not None:
        y = y + D[:, None] * u
    return y


FFT_THREADS_ENV = "MULTISEQ_FFT_THREADS"


def fft_threads_from_env() -> int:
    """`MULTISEQ_FFT_THREADS` as a thread count for CPU FFTs and kernel generation; 0 (the default): no scope.

    Blocks read it once, at construction. Measured side by side (s4d width 256, forward+backward, 2 threads, FFTs
    at 1 thread against 2): no consistent gain at 2K or 16K (-7% to +27% by minimum, -12% to +10% by median over
    two runs), so the default leaves the caller's thread count alone. Set it to 1 where MKL's multi-threaded
    batched FFT stalls (once seen on this kind of machine: S4D at 1K went from 0.2 s to 2 s with 2 threads).
    """
    text = os.environ.get(FFT_THREADS_ENV, "") or "0"
    try:
        threads = int(text)
    except ValueError:
        raise ValueError(f"{FFT_THREADS_ENV} must be a whole number of threads (0: no scope), got {text!r}") from None
    return max(0, threads)


@contextlib.contextmanager
def fft_thread_scope(threads: int, device: torch.device):
    """Run the enclosed CPU work on `threads` threads (0: as the caller), restoring the caller's count after.

    Only switches when `threads` differs from the current count, so the default and single-threaded runs never
    touch torch's process-wide setting.
    """
    have = torch.get_num_threads()
    if threads <= 0 or threads == have or device.type != "cpu":
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(have)


class _FFTConv(torch.autograd.Function):
    """`y = irfft(rfft(u, n) rfft(k, n))[:L]` with a hand-written backward.

    Autograd's backward of `rfft(u, n)` with n > L runs a complex-to-complex transform of the padded size;
    here the backward is two circular correlations, `grad_u = irfft(G conj(K))[:L]` and
    `grad_k = irfft(sum_b G conj(U))`, reusing the saved spectra: 3 real transforms forward, 3 backward.
    u: (B, H, L), k: (H, Lk <= n) -> (B, H, L).
    """

    @staticmethod
    def forward(ctx, u: Tensor, k: Tensor, n: int, threads: int = 0) -> Tensor:  # type: ignore[override]
        with fft_thread_scope(threads, u.device):
            u_f = torch.fft.rfft(u, n=n)  # (B, H, n/2+1)
            k_f = torch.fft.rfft(k, n=n)  # (H, n/2+1)
            y = torch.fft.irfft(u_f * k_f, n=n)[..., : u.shape[-1]]
        ctx.save_for_backward(u_f, k_f)
        ctx.n, ctx.L, ctx.Lk, ctx.threads = n, u.shape[-1], k.shape[-1], threads
        return y

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        u_f, k_f = ctx.saved_tensors
        grad_u = grad_k = None
        with fft_thread_scope(ctx.threads, g.device):
            g_f = torch.fft.rfft(g, n=ctx.n)
            if ctx.needs_input_grad[0]:
                grad_u = torch.fft.irfft(g_f * k_f.conj(), n=ctx.n)[..., : ctx.L]
            if ctx.needs_input_grad[1]:
                grad_k = torch.fft.irfft((g_f * u_f.conj()).sum(0), n=ctx.n)[..., : ctx.Lk]
        return grad_u, grad_k, None, None


def fft_conv(u: Tensor, K: Tensor, D: Tensor | None = None, bidirectional: bool = False, threads: int = 0) -> Tensor:
    """Long convolution of `u` with `K` via real FFTs at the next fast size >= 2L (no circular wrap-around).

    Args:
        u: (B, H, L) input (zero it at padded positions first: a bidirectional kernel reads the future).
        K: (H, Lk) causal kernel, or (2, H, Lk) = (forward, backward) kernels when bidirectional; Lk >= L is
            truncated, Lk < L is zero-extended.
        D: (H,) skip term, or None.
        bidirectional: see `fft_conv_ref` for the exact two-sided form.
        threads: CPU threads for the transforms (`fft_thread_scope`; 0: the caller's).

    Returns:
        (B, H, L), dtype of u.
    """
    _check_conv(u, K, D, bidirectional)
    L = u.shape[-1]
    if L == 0:
        return u.clone()
    n = next_fast_len(2 * L)
    K = K[..., :L]
    if bidirectional:
        # Two-sided kernel of length n: k0 at lags 0..L-1, k1[j] at lag -(j+1), i.e. index n-1-j.
        k = F.pad(K[0], (0, n - K.shape[-1])) + F.pad(K[1].flip(-1), (n - K.shape[-1], 0))
    else:
        k = K
    y = _FFTConv.apply(u, k, n, threads)
    if D is not None:
        y = y + D[:, None] * u
    return y.to(u.dtype)


# ---------------------------------------------------------------------------------------------------------------
# DPLR (S4) kernel
# ---------------------------------------------------------------------------------------------------------------


def _full_system(Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, symmetric: bool):
    """Conjugate-augment the half spectrum when `symmetric` (the real system of size 2N that S4 models)."""
    if not symmetric:
        return Lambda, P, B, C
    cat = lambda t: torch.cat([t, t.conj()], dim=-1)  # noqa: E731
    return cat(Lambda), cat(P), cat(B), cat(C)


def _check_dplr(Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Tensor, L: int) -> None:
    for name, t in (("Lambda", Lambda), ("P", P), ("B", B), ("C", C)):
        if not t.is_complex():
            raise TypeError(f"{name} must be complex, got {t.dtype}")
        if t.shape != Lambda.shape or t.dim() != 2:
            raise ValueError(f"Lambda, P, B, C must share shape (H, N); {name} has {tuple(t.shape)}")
    if dt.shape != Lambda.shape[:1]:
        raise ValueError(f"dt must have shape (H,) = ({Lambda.shape[0]},), got {tuple(dt.shape)}")
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ValueError(f"L must be an int >= 1, got {L!r}")


def dplr_discretize(Lambda: Tensor, P: Tensor, B: Tensor, dt: Tensor, symmetric: bool = True):
    """Dense bilinear discretisation of `A = diag(Lambda) - P P^*` (conjugate-augmented when `symmetric`).

    Returns:
        dA: (H, M, M) complex, dB: (H, M) complex, with M = 2N when symmetric else N.
    """
    Lam, Pf, Bf, _ = _full_system(Lambda, P, B, B, symmetric)
    A = torch.diag_embed(Lam) - Pf[..., :, None] * Pf.conj()[..., None, :]  # (H, M, M)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    half = (dt[:, None, None] / 2).to(A.dtype) * A
    left = eye - half
    dA = torch.linalg.solve(left, eye + half)
    dB = torch.linalg.solve(left, dt[:, None].to(A.dtype) * Bf)
    return dA, dB


def dplr_kernel_ref(
    Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Tensor, L: int, symmetric: bool = True
) -> Tensor:
    """Dense matrix powers of the discretised DPLR SSM; the specification of `dplr_kernel`.

    `K[l] = C^T dA^l dB` over the conjugate-augmented real system of size 2N (`symmetric=True`, as S4), or
    `K[l] = 2 Re(C^T dA^l dB)` over the N-dimensional complex system (`symmetric=False`).
    """
    _check_dplr(Lambda, P, B, C, dt, L)
    dA, dB = dplr_discretize(Lambda, P, B, dt, symmetric)
    Cf = _full_system(Lambda, P, B, C, symmetric)[3]
    out = []
    x = dB
    for _ in range(L):
        out.append((Cf * x).sum(-1))
        x = torch.einsum("hmk,hk->hm", dA, x)
    K = torch.stack(out, dim=-1)
    return K.real if symmetric else 2 * K.real


def dplr_c_tilde(
    Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Tensor, L: int, inverse: bool = False
) -> Tensor:
    """`C~ = (I - dA^L)^T C` (or, with `inverse`, C from C~), for the S4 kernel of length L. Shapes (H, N).

    The augmented 2N system is used; its conjugate half of `C~` is the conjugate of the first half, so the
    first N entries are returned.
    """
    dA, _ = dplr_discretize(Lambda, P, B, dt, symmetric=True)
    M = dA.shape[-1]
    eye = torch.eye(M, dtype=dA.dtype, device=dA.device)
    IminusT = (eye - torch.linalg.matrix_power(dA, L)).transpose(-1, -2)  # (H, M, M)
    Cf = torch.cat([C, C.conj()], dim=-1)
    if inverse:
        out = torch.linalg.solve(IminusT, Cf)
    else:
        out = torch.einsum("hmk,hk->hm", IminusT, Cf)
    return out[..., : C.shape[-1]]


def _cauchy_chunk(v: Tensor, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """r[a, h, k] = sum_n v[a, h, n] / (alpha[k] - beta[k] x[h, n]). v: (A, H, N), x: (H, N), alpha/beta: (K,)."""
    den = alpha[None, None, :] - beta[None, None, :] * x[..., None]  # (H, N, K)
    return torch.einsum("ahn,hnk->ahk", v, den.reciprocal())


def _chunks(K: int, H: int, N: int, budget: int) -> list[slice]:
    kc = max(1, budget // max(1, H * N))
    return [slice(s, s + kc) for s in range(0, K, kc)]


class _Cauchy(torch.autograd.Function):
    """Chunked Cauchy sum with a hand-written backward (recomputes each chunk's 1/den; never stores (H, N, K)).

    For f = v / (alpha - beta x) (holomorphic in v and x), PyTorch's complex gradient is g * conj(f'):
    `grad_v = sum_k g conj(w)`, `grad_x = sum_k conj(beta w^2) sum_a g conj(v)`, with `w = 1 / den`.
    """

    @staticmethod
    def forward(ctx, v: Tensor, x: Tensor, alpha: Tensor, beta: Tensor, budget: int) -> Tensor:  # type: ignore[override]
        H, N = x.shape
        out = []
        for sl in _chunks(alpha.shape[0], H, N, budget):
            out.append(_cauchy_chunk(v, x, alpha[sl], beta[sl]))
        ctx.save_for_backward(v, x, alpha, beta)
        ctx.budget = budget
        return torch.cat(out, dim=-1)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        v, x, alpha, beta = ctx.saved_tensors
        H, N = x.shape
        grad_v = torch.zeros_like(v)
        grad_x = torch.zeros_like(x)
        for sl in _chunks(alpha.shape[0], H, N, ctx.budget):
            w = (alpha[sl] - beta[sl] * x[..., None]).reciprocal_().conj_physical_()  # conj(w), (H, N, kc)
            gs = g[..., sl]  # (A, H, kc)
            grad_v += torch.einsum("ahk,hnk->ahn", gs, w)
            w.mul_(w).mul_(beta[sl].conj())  # conj(beta w^2)
            grad_x += (torch.einsum("ahk,hnk->ahn", gs, w) * v.conj()).sum(0)
        return grad_v, grad_x, None, None, None


def _cauchy(v: Tensor, x: Tensor, alpha: Tensor, beta: Tensor, budget: int = 1 << 22) -> Tensor:
    """`_cauchy_chunk` over chunks of k with memory O(H N chunk) in forward and backward. Shapes as there."""
    return _Cauchy.apply(v, x, alpha, beta, budget)


class _CauchyPairs(torch.autograd.Function):
    """Chunked `r[a, h, k] = 2 alpha[k] S[a, h, k] - 2 beta[k] S[A + a, h, k]` with
    `S[b, h, k] = sum_n u[b, h, n] w[h, n, k]`, `w = 1 / (alpha^2 - 2 alpha beta p1 + beta^2 p2)`, for real u (2A, H,
    N), p1, p2 (H, N): the pair sum of a conjugate-symmetric system (see `_cauchy_pairs`).

    Memory O(H N chunk): the backward recomputes each chunk's `w`. For real inputs PyTorch's gradient is the real
    part of `g * conj(d out / d input)`; with `gS` the gradient reaching S (`conj(2 alpha) g` for the first A rows,
    `-conj(2 beta) g` for the last A): `grad_u = Re sum_k gS conj(w)`,
    `grad_p1 = Re sum_k conj(2 alpha beta w^2) sum_b gS u`, `grad_p2 = -Re sum_k conj(beta^2 w^2) sum_b gS u`.
    """

    @staticmethod
    def _inverse_den(q1: Tensor, q2: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        """`1 / den` for one chunk in two fused multiply-add passes and an in-place reciprocal (about 5x faster
        than plain arithmetic, which makes four passes). q1, q2: (H, N, 1) complex; alpha, beta: (kc,)."""
        return torch.addcmul(alpha * alpha, q1, -2 * alpha * beta).addcmul_(q2, beta * beta).reciprocal_()

    @staticmethod
    def forward(ctx, u, p1, p2, alpha, beta, budget):  # type: ignore[override]
        H, N = p1.shape
        A = u.shape[0] // 2
        q1, q2 = p1[..., None].to(alpha.dtype), p2[..., None].to(alpha.dtype)
        uc = u.to(alpha.dtype)
        out = []
        for sl in _chunks(alpha.shape[0], H, N, budget):
            S = torch.einsum("bhn,hnk->bhk", uc, _CauchyPairs._inverse_den(q1, q2, alpha[sl], beta[sl]))
            out.append(2 * alpha[sl] * S[:A] - 2 * beta[sl] * S[A:])
        ctx.save_for_backward(u, p1, p2, alpha, beta)
        ctx.budget = budget
        return torch.cat(out, dim=-1)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        u, p1, p2, alpha, beta = ctx.saved_tensors
        H, N = p1.shape
        q1, q2 = p1[..., None].to(alpha.dtype), p2[..., None].to(alpha.dtype)
        grad_u, grad_p1, grad_p2 = torch.zeros_like(u), torch.zeros_like(p1), torch.zeros_like(p2)
        for sl in _chunks(alpha.shape[0], H, N, ctx.budget):
            a, b = alpha[sl], beta[sl]
            w = _CauchyPairs._inverse_den(q1, q2, a, b).conj_physical_()  # conj(w), (H, N, kc)
            gs = torch.cat([g[..., sl] * (2 * a).conj(), g[..., sl] * (-2 * b).conj()])  # (2A, H, kc)
            grad_u += torch.einsum("bhk,hnk->bhn", gs, w).real
            w.mul_(w)  # conj(w^2)
            grad_p1 += (torch.einsum("bhk,hnk->bhn", gs * (2 * a * b).conj(), w).real * u).sum(0)
            grad_p2 -= (torch.einsum("bhk,hnk->bhn", gs * (b * b).conj(), w).real * u).sum(0)
        return grad_u, grad_p1, grad_p2, None, None, None


def _cauchy_pairs(v: Tensor, x: Tensor, alpha: Tensor, beta: Tensor, budget: int = 1 << 19) -> Tensor:
    """`_cauchy` of the conjugate-augmented system `[v, conj v]`, `[x, conj x]` from its first half alone.

    Each conjugate pair is one term with a real-coefficient numerator,
    `v / (a - b x) + conj(v) / (a - b conj(x)) = (2 a Re v - 2 b Re(v conj x)) / (a^2 - 2 a b Re x + b^2 |x|^2)`,
    so the reciprocals (the costly part) are computed for N entries instead of 2N. v: (A, H, N), x: (H, N).
    The default chunk budget keeps each chunk's (H, N, chunk) workspace in cache (fastest on CPU).
    """
    u = torch.cat([v.real, (v * x.conj()).real])  # (2A, H, N)
    return _CauchyPairs.apply(u, x.real, x.real**2 + x.imag**2, alpha, beta, budget)


def dplr_kernel(
    Lambda: Tensor,
    P: Tensor,
    B: Tensor,
    C: Tensor,
    dt: Tensor,
    L: int,
    symmetric: bool = True,
    c_tilde: bool = False,
) -> Tensor:
    """S4 kernel of the bilinear discretisation of `A = diag(Lambda) - P P^*` by Cauchy sums and Woodbury.

    With `z` on the L-th roots of unity, the truncated generating function is
    `sum_l K_l z^l = C~^T (I - z dA)^{-1} dB`, `C~ = (I - dA^L)^T C`, and for the bilinear rule
    `(I - z dA)^{-1} dB = R(z) B` with `R(z) = dt [(1 - z) I - (1 + z) dt A / 2]^{-1}` (finite at z = -1).
    With `s = (1 + z) / 2` and diagonal `R0 = dt / ((1 - z) - (1 + z) dt Lambda / 2)`, Woodbury gives
    `K^(z) = k00 - s k01 k10 / (1 + s k11)`, `k_ab = sum_n a_n b_n R0_n` for a in (C~, conj P), b in (B, P).

    Args:
        Lambda, P, B, C: (H, N) complex; C is C~ already when `c_tilde`.
        dt: (H,) positive real step sizes.
        L: kernel length.
        symmetric: model the conjugate-augmented real system of size 2N (S4's convention, default), else
            `K = 2 Re(C^T dA^l dB)` of the N-dimensional complex system.
        c_tilde: C is given as C~ (the S4 layer learns C~ directly).

    Returns:
        (H, L) real.
    """
    _check_dplr(Lambda, P, B, C, dt, L)
    if not c_tilde:
        C = dplr_c_tilde(Lambda, P, B, C, dt, L) if symmetric else _c_tilde_half(Lambda, P, B, C, dt, L)
    n_nodes = L // 2 + 1 if symmetric else L
    k = torch.arange(n_nodes, device=Lambda.device, dtype=Lambda.real.dtype)
    z = torch.polar(torch.ones_like(k), -2 * math.pi * k / L)  # (K,) roots of unity
    from multiseq.kernels import use_fused

    fused = use_fused("dplr_kernel", Lambda)
    # The CPU path sums conjugate pairs as one term (`_cauchy_pairs`); the fused one takes the full system.
    Lam, Pf, Bf, Cf = _full_system(Lambda, P, B, C, symmetric and fused)
    x = Lam * (dt[:, None] / 2)  # (H, M)
    v = torch.stack([Cf * Bf, Cf * Pf, Pf.conj() * Bf, Pf.conj() * Pf]) * dt[:, None]  # (4, H, M)
    if fused:
        from multiseq.kernels.triton_s4 import triton_cauchy

        r = triton_cauchy(v, x, 1 - z, 1 + z)
    elif symmetric:
        r = _cauchy_pairs(v, x, 1 - z, 1 + z)  # (4, H, K)
    else:
        r = _cauchy(v, x, 1 - z, 1 + z)  # (4, H, K)
    s = (1 + z) / 2
    k_hat = r[0] - s * r[1] * r[2] / (1 + s * r[3])  # (H, K)
    if symmetric:
        return torch.fft.irfft(k_hat, n=L)
    return 2 * torch.fft.ifft(k_hat, n=L).real


def _c_tilde_half(Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Tensor, L: int) -> Tensor:
    dA, _ = dplr_discretize(Lambda, P, B, dt, symmetric=False)
    eye = torch.eye(dA.shape[-1], dtype=dA.dtype, device=dA.device)
    return torch.einsum("hmk,hk->hm", (eye - torch.linalg.matrix_power(dA, L)).transpose(-1, -2), C)

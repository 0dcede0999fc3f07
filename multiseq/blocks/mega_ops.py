"""Mega's functional ops: the multi-dimensional damped EMA and attention restricted to chunks.

* `ema_ref` is the sequential recurrence (the specification); `ema` computes the same thing as one FFT convolution
  with a kernel built from the coefficients (`ema_kernel`, or the fused Triton generator on CUDA).
* `chunk_attention_ref` is the dense masked specification; `chunk_attention` reshapes into chunks and runs SDPA
  (softmax) or a batched matmul (element-wise functions), memory O(L * chunk).
* `laplace` is Mega's attention function `0.5 * (1 + erf((s - mu) / (sigma * sqrt(2))))` with the paper's
  constants mu = sqrt(1/2), sigma = sqrt(1/(4 pi)).
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from multiseq.blocks._fft import next_fast_len
from multiseq.kernels import register_fused, use_fused

register_fused("ema_kernel", "Triton EMA kernel generation k[d,l] = sum_j w[d,j] q[d,j]^l (forward and backward)")

LAPLACE_MU = math.sqrt(0.5)
LAPLACE_SIGMA = math.sqrt(1.0 / (4.0 * math.pi))
ATTENTION_FNS = ("softmax", "laplace", "relu2")


def laplace(s: Tensor, mu: float = LAPLACE_MU, sigma: float = LAPLACE_SIGMA) -> Tensor:
    """Mega's Laplace attention function, element-wise: `0.5 * (1 + erf((s - mu) / (sigma * sqrt(2))))`."""
    return 0.5 * (1.0 + torch.erf((s - mu) / (sigma * math.sqrt(2.0))))


# ----------------------------------------------------------------------------------------------------------------
# EMA
# ----------------------------------------------------------------------------------------------------------------


def _check_ema(x: Tensor, coeffs: tuple[Tensor, ...], bidirectional: bool) -> None:
    if x.dim() != 3 or not x.is_floating_point():
        raise ValueError(f"x must be a floating (B, D, L) tensor, got shape {tuple(x.shape)} dtype {x.dtype}")
    D = x.shape[1]
    want = "(2, D, N)" if bidirectional else "(D, N)"
    for name, c in zip(("alpha", "delta", "beta", "gamma"), coeffs):
        ok = c.dim() == (3 if bidirectional else 2) and c.shape[-2] == D and (not bidirectional or c.shape[0] == 2)
        if not ok or c.shape != coeffs[0].shape:
            raise ValueError(
                f"{name} must have shape {want} with D = {D} (bidirectional={bidirectional}); got {tuple(c.shape)}"
            )


def ema_ref(
    x: Tensor, alpha: Tensor, delta: Tensor, beta: Tensor, gamma: Tensor, bidirectional: bool = False
) -> Tensor:
    """Damped EMA by its recurrence, one step at a time (the specification; O(L) Python steps).

    `h[., t] = alpha * beta * x[., t] + (1 - alpha * delta) * h[., t-1]`, `h[., -1] = 0`,
    `y[b, d, t] = sum_j gamma[d, j] * h[b, d, j, t]`. Bidirectional: the sum of a forward EMA with coefficients
    `[0]` and a backward EMA (the same recurrence on the time-reversed input, reversed back) with coefficients `[1]`.

    Args:
        x: (B, D, L). alpha, delta: (D, N) in (0, 1) ((2, D, N) when bidirectional). beta, gamma: same shape.

    Returns:
        (B, D, L).
    """
    _check_ema(x, (alpha, delta, beta, gamma), bidirectional)
    if bidirectional:
        fwd = ema_ref(x, alpha[0], delta[0], beta[0], gamma[0])
        bwd = ema_ref(x.flip(-1), alpha[1], delta[1], beta[1], gamma[1]).flip(-1)
        return fwd + bwd
    B, D, L = x.shape
    h = x.new_zeros(B, D, alpha.shape[-1])
    ys = []
    for t in range(L):
        h = alpha * beta * x[:, :, t, None] + (1 - alpha * delta) * h  # (B, D, N)
        ys.append((gamma * h).sum(-1))
    return torch.stack(ys, -1) if ys else x.clone()


def ema_kernel_ref(w: Tensor, logq: Tensor, length: int) -> Tensor:
    """k[d, l] = sum_j w[d, j] * exp(l * logq[d, j]) for l < length, with the (D, N, length) Vandermonde matrix."""
    pos = torch.arange(length, device=w.device, dtype=w.dtype)
    return torch.einsum("dn,dnl->dl", w, torch.exp(logq[..., None] * pos))


def ema_kernel(w: Tensor, logq: Tensor, length: int) -> Tensor:
    """EMA convolution kernel `k[d, l] = sum_j w[d, j] * q[d, j]^l`, l < length, in O(D * length) memory.

    Writing l = c*T + r with T ~ sqrt(length), `q^l = q^(cT) * q^r`, so the kernel is one batched matmul
    `(D, C, N) @ (D, N, T)` instead of a (D, N, length) Vandermonde matrix (268 MB at D=256, N=16, L=16K).
    On CUDA with Triton, a fused generator computes it directly (`multiseq.kernels.triton_ema`).

    Args:
        w: (D, N) weights. logq: (D, N) log of the decay (< 0). length: kernel length.

    Returns:
        (D, length).
    """
    if length <= 0:
        return w.new_zeros(w.shape[0], 0)
    if use_fused("ema_kernel", w):
        from multiseq.kernels.triton_ema import triton_ema_kernel

        return triton_ema_kernel(w, logq, length)
    T = max(1, math.isqrt(length - 1) + 1)
    C = -(-length // T)
    r = torch.arange(T, device=w.device, dtype=w.dtype)
    c = torch.arange(C, device=w.device, dtype=w.dtype) * T
    inner = torch.exp(logq[..., None] * r)  # (D, N, T)
    outer = w[..., None] * torch.exp(logq[..., None] * c)  # (D, N, C)
    k = torch.bmm(outer.transpose(1, 2), inner)  # (D, C, T)
    return k.reshape(w.shape[0], C * T)[:, :length]


def ema_coefficients(alpha: Tensor, delta: Tensor, beta: Tensor, gamma: Tensor) -> tuple[Tensor, Tensor]:
    """(w, log q) with w = gamma * alpha * beta and q = 1 - alpha * delta (computed as log1p for accuracy)."""
    return gamma * alpha * beta, torch.log1p(-alpha * delta)


class _FFTConv(torch.autograd.Function):
    """y = causal conv(x, kf) + anti-causal conv(x, kb), with real FFTs in forward AND backward.

    Both kernels go into one circular kernel of length n >= L + K - 1 (kf at lags 0..K-1, kb at lags n-1..n-K+1
    and 0), so forward is three real FFTs and backward three more: dx correlates dy with that kernel, and one
    inverse FFT of `sum_b DY * conj(X)` gives the gradients of both kernels. Autograd through `rfft` would instead
    run complex-to-complex transforms in backward.
    """

    @staticmethod
    def forward(ctx, x: Tensor, kf: Tensor, kb: Tensor | None) -> Tensor:  # type: ignore[override]
        L, K = x.shape[-1], kf.shape[-1]
        n = next_fast_len(max(L + K - 1, 2 * K), even=True)
        kc = F.pad(kf, (0, n - K))  # (D, n)
        if kb is not None:
            kc[:, 0] += kb[:, 0]
            if K > 1:
                kc[:, n - K + 1 :] += kb[:, 1:].flip(-1)
        X = torch.fft.rfft(x, n=n)
        H = torch.fft.rfft(kc, n=n)
        ctx.save_for_backward(X, H)
        ctx.dims = (L, K, n)
        return torch.fft.irfft(X * H, n=n)[..., :L]

    @staticmethod
    def backward(ctx, gy: Tensor):  # type: ignore[override]
        X, H = ctx.saved_tensors
        L, K, n = ctx.dims
        G = torch.fft.rfft(gy, n=n)
        gx = torch.fft.irfft(G * H.conj(), n=n)[..., :L] if ctx.needs_input_grad[0] else None
        gkf = gkb = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            gkc = torch.fft.irfft((G * X.conj()).sum(0), n=n)  # (D, n): gradient of the circular kernel
            gkf = gkc[:, :K]
            if ctx.needs_input_grad[2]:
                gkb = torch.cat([gkc[:, :1], gkc[:, n - K + 1 :].flip(-1)], -1)
        return gx, gkf, gkb


def ema_conv(x: Tensor, k_fwd: Tensor, k_bwd: Tensor | None = None) -> Tensor:
    """FFT convolution of x (B, D, L) with a causal kernel k_fwd (D, K) and optionally an anti-causal one k_bwd.

    `y[t] = sum_{s<=t} k_fwd[t-s] x[s] + sum_{s>=t} k_bwd[s-t] x[s]`. Half precision is computed in float32.
    """
    dtype = x.dtype
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    kb = None if k_bwd is None else k_bwd.to(work)
    return _FFTConv.apply(x.to(work), k_fwd.to(work), kb).to(dtype)


def ema(
    x: Tensor,
    alpha: Tensor,
    delta: Tensor,
    beta: Tensor,
    gamma: Tensor,
    bidirectional: bool = False,
    truncation: int | None = None,
) -> Tensor:
    """Multi-dimensional damped EMA as one FFT convolution (same contract as `ema_ref`).

    Args:
        x: (B, D, L).
        alpha, delta: (D, N) in (0, 1); (2, D, N) when bidirectional ([0] forward, [1] backward).
        beta, gamma: same shape as alpha.
        bidirectional: add the backward EMA.
        truncation: keep only kernel lags < truncation (None: the full length).

    Returns:
        (B, D, L).
    """
    _check_ema(x, (alpha, delta, beta, gamma), bidirectional)
    L = x.shape[-1]
    if L == 0:
        return x.clone()
    K = L if truncation is None else max(1, min(L, int(truncation)))
    w, logq = ema_coefficients(alpha, delta, beta, gamma)
    if bidirectional:
        return ema_conv(x, ema_kernel(w[0], logq[0], K), ema_kernel(w[1], logq[1], K))
    return ema_conv(x, ema_kernel(w, logq, K))


# ----------------------------------------------------------------------------------------------------------------
# Chunked attention
# ----------------------------------------------------------------------------------------------------------------


def _check_attention(q: Tensor, k: Tensor, v: Tensor, chunk: int, kpm: Tensor | None, fn: str) -> None:
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"q, k must share shape (B, H, L, d) and v must be (B, H, L, e); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0:
        raise ValueError(f"chunk must be an int >= 0 (0 = one chunk spanning the sequence), got {chunk!r}")
    if fn not in ATTENTION_FNS:
        raise ValueError(f"attention fn {fn!r} is not valid; use one of {', '.join(ATTENTION_FNS)}")
    if kpm is not None:
        if kpm.dtype != torch.bool or kpm.shape != (q.shape[0], q.shape[2]):
            raise ValueError(
                f"key_padding_mask must be a bool (B, L) = {(q.shape[0], q.shape[2])} tensor (True = real), got "
                f"{kpm.dtype} {tuple(kpm.shape)}"
            )


def chunk_attention_ref(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    chunk: int,
    key_padding_mask: Tensor | None = None,
    fn: str = "softmax",
    bias: Tensor | None = None,
    causal: bool = False,
) -> Tensor:
    """Dense (L x L) specification of `chunk_attention`.

    Query i sees key j when both lie in the same chunk (`i // chunk == j // chunk`; chunk 0 means one chunk),
    j is real, and `j <= i` when causal. Scores are `q.k / sqrt(d)` for softmax and `q.k / n` for the element-wise
    functions, where n is the number of keys the query may see (Mega's length scaling: the real keys in its chunk,
    or the visible ones when causal). `bias[i - j + P - 1]` (a (2P - 1,) relative bias, P >= chunk) is added to
    scores before the function. Softmax rows with no visible key, and element-wise entries at masked keys, are 0.

    Args:
        q, k: (B, H, L, d). v: (B, H, L, e). key_padding_mask: (B, L) bool, True = real.
        fn: `softmax`, `laplace` or `relu2`. bias: (2P - 1,) relative bias with P >= the span, or None.

    Returns:
        (B, H, L, e).
    """
    _check_attention(q, k, v, chunk, key_padding_mask, fn)
    B, H, L, d = q.shape
    i = torch.arange(L, device=q.device)
    span = chunk if chunk else max(L, 1)
    allowed = (i[:, None] // span) == (i[None, :] // span)
    if causal:
        allowed = allowed & (i[None, :] <= i[:, None])
    allowed = allowed[None, None].expand(B, 1, L, L)
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :]
    s = torch.einsum("bhid,bhjd->bhij", q, k)
    if fn == "softmax":
        s = s / math.sqrt(d)
    else:
        s = s / allowed.sum(-1, keepdim=True).clamp(min=1).to(s.dtype)
    if bias is not None:
        P = (bias.shape[0] + 1) // 2
        s = s + bias[(i[:, None] - i[None, :]).clamp(-(P - 1), P - 1) + P - 1]
    if fn == "softmax":
        any_key = allowed.any(-1, keepdim=True)
        a = torch.softmax(s.masked_fill(~allowed, float("-inf")).masked_fill(~any_key, 0.0), -1) * any_key
    else:
        a = (laplace(s) if fn == "laplace" else F.relu(s).square()) * allowed
    return torch.einsum("bhij,bhje->bhie", a, v)


def relative_bias_matrix(bias: Tensor, size: int) -> Tensor:
    """(size, size) Toeplitz matrix `bias[i - j + P - 1]` from a (2P - 1,) relative bias (lags clamped to P - 1)."""
    P = (bias.shape[0] + 1) // 2
    i = torch.arange(size, device=bias.device)
    return bias[(i[:, None] - i[None, :]).clamp(-(P - 1), P - 1) + P - 1]


def chunk_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    chunk: int,
    key_padding_mask: Tensor | None = None,
    fn: str = "softmax",
    bias: Tensor | None = None,
    causal: bool = False,
) -> Tensor:
    """Attention restricted to chunks of `chunk` positions (0: one chunk); memory O(L * chunk).

    Same contract as `chunk_attention_ref`. A length that is not a multiple of the chunk is padded and masked
    automatically; padding never changes the outputs at real positions.

    Args:
        q, k: (B, H, L, d). v: (B, H, L, e). chunk: chunk size (0 = whole sequence).
        key_padding_mask: (B, L) bool, True = real. fn: `softmax`, `laplace` or `relu2`.
        bias: (2P - 1,) relative position bias or None. causal: keys only up to the query.

    Returns:
        (B, H, L, e).
    """
    _check_attention(q, k, v, chunk, key_padding_mask, fn)
    B, H, L, d = q.shape
    if L == 0:
        return v.clone()
    C = min(chunk, L) if chunk else L
    pad = -L % C
    kpm = key_padding_mask
    if kpm is not None and not pad and bool(kpm.all()):
        kpm = None  # nothing to mask: keeps the bias-only (or mask-free) attention path
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        kpm = F.pad(kpm if kpm is not None else q.new_ones(B, L, dtype=torch.bool), (0, pad), value=False)
    qc, kc, vc = (rearrange(t, "b h (n c) e -> b h n c e", c=C) for t in (q, k, v))
    mc = None if kpm is None else rearrange(kpm, "b (n c) -> b 1 n 1 c", c=C)  # key mask per chunk
    tri = torch.ones(C, C, dtype=torch.bool, device=q.device).tril() if causal else None
    allowed = mc if tri is None else (tri if mc is None else mc & tri)
    bmat = None if bias is None else relative_bias_matrix(bias, C).to(q.dtype)
    if fn == "softmax":
        mask: Tensor | None
        if allowed is None:
            mask = bmat
            out = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mask)
            return rearrange(out, "b h n c e -> b h (n c) e")[:, :, :L]
        any_key = allowed.any(-1, keepdim=True)
        # Rows with no visible key would give NaN: let them see everything, then zero them.
        allowed = allowed | ~any_key
        if bmat is None:
            mask = allowed
        else:
            mask = bmat.masked_fill(~allowed, float("-inf"))
        out = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mask) * any_key.to(q.dtype)
        return rearrange(out, "b h n c e -> b h (n c) e")[:, :, :L]
    s = torch.einsum("bhncd,bhnkd->bhnck", qc, kc)  # (B, H, n, C, C)
    if allowed is None:
        s = s / C
    else:
        s = s / allowed.sum(-1, keepdim=True).clamp(min=1).to(s.dtype)
    if bmat is not None:
        s = s + bmat
    a = laplace(s) if fn == "laplace" else F.relu(s).square()
    if allowed is not None:
        a = a * allowed.to(a.dtype)
    out = torch.einsum("bhnck,bhnke->bhnce", a, vc)
    return rearrange(out, "b h n c e -> b h (n c) e")[:, :, :L]


def attention_row(
    q: Tensor, k: Tensor, v: Tensor, fn: str = "softmax", bias_row: Tensor | None = None
) -> Tensor:
    """One query against its visible keys (streaming): q (B, d), k (B, n, d), v (B, n, e), bias_row (n,) -> (B, e)."""
    s = torch.einsum("bd,bnd->bn", q, k)
    if fn == "softmax":
        s = s / math.sqrt(q.shape[-1])
    else:
        s = s / max(k.shape[1], 1)
    if bias_row is not None:
        s = s + bias_row
    if fn == "softmax":
        a = torch.softmax(s, -1)
    else:
        a = laplace(s) if fn == "laplace" else F.relu(s).square()
    return torch.einsum("bn,bne->be", a, v)

"""Mega (Ma et al., ICLR 2023): multi-dimensional damped EMA + single-head gated attention + normalised FFN.

Registered as `mega` (attention over the whole sequence) and `mega_chunk` (attention within chunks of 128, linear
time; information crosses chunks only through the EMA). A Mega layer applies its own norm, residual and
feed-forward, so it sets `manages_residual = True`.

One layer, for x (B, L, D) (prenorm, the default):

    xn = norm(x);  v = silu(W_v xn)                       # (B, L, h)
    x' = silu(EMA(xn) + omega * xn)                        # (B, L, D)
    u, zr, hx = split(W_mx x', [D, z + h, D]);  u = sigmoid(u);  z, r = split(silu(zr), [z, h])
    q, k = z * kappa_{q,k} + mu_{q,k}
    o = attention(q, k, v) (softmax / laplace / relu2, relative bias, chunked)
    H = silu(hx + W_h (o * r));  y = u * H + (1 - u) * x
    y = y + W_2 silu(W_1 norm(y))                          # normalised feed-forward

Ops (EMA, chunk attention, Laplace) live in `multiseq.blocks.mega_ops`. `step()` streams a causal layer one
token at a time with the EMA state and the keys/values of the current partial chunk, equal to the full forward.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseq.blocks.mega_ops import ATTENTION_FNS, attention_row, chunk_attention, ema
from multiseq.blocks.registry import mark_optim, register_block

NORMS = ("layer", "scale", "rms", "batch")
REL_POS = ("simple", "rotary", "none")


# ----------------------------------------------------------------------------------------------------------------
# Norms (each takes the padding mask; only the batch norm uses it)
# ----------------------------------------------------------------------------------------------------------------


class ScaleNorm(nn.Module):
    """`g * x / rms(x)` with one learned scalar g (Nguyen & Salazar 2019, as used by Mega)."""

    def __init__(self, dim: int, eps: float = 1e-5, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.eps = eps
        self.scalar = nn.Parameter(torch.ones(1, device=device, dtype=dtype))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.scalar


class RMSNormM(nn.Module):
    """`w * x / rms(x)` with a learned per-channel weight."""

    def __init__(self, dim: int, eps: float = 1e-6, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LayerNormM(nn.LayerNorm):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return super().forward(x)


class MaskedBatchNorm(nn.Module):
    """Batch norm over (batch, length) whose statistics count only real tokens, so padding changes nothing.

    Training uses the batch statistics and updates running ones; eval (and `step`) uses the running ones.
    """

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1, device: Any = None, dtype: Any = None):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_mean", torch.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_var", torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.training:
            w = (torch.ones(x.shape[:-1], device=x.device, dtype=x.dtype) if mask is None else mask.to(x.dtype))[..., None]
            n = w.sum().clamp(min=1)
            mean = (x * w).sum(dim=tuple(range(x.dim() - 1))) / n
            var = ((x - mean).square() * w).sum(dim=tuple(range(x.dim() - 1))) / n
            with torch.no_grad():
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def make_mega_norm(kind: str, dim: int, device: Any = None, dtype: Any = None) -> nn.Module:
    if kind not in NORMS:
        raise ValueError(f"norm {kind!r} is not valid for Mega; use one of {', '.join(NORMS)}")
    cls = {"layer": LayerNormM, "scale": ScaleNorm, "rms": RMSNormM, "batch": MaskedBatchNorm}[kind]
    return cls(dim, device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# EMA layer
# ----------------------------------------------------------------------------------------------------------------


class MultiHeadEMA(nn.Module):
    """Multi-dimensional damped EMA per channel: `silu(EMA(x) + omega * x)`, (B, L, D) -> (B, L, D).

    Parameters (paper notation): alpha = sigmoid(alpha_raw) the weight, delta = sigmoid(delta_raw) the damping,
    beta the expansion, gamma the projection (scaled by sqrt(1/N)), omega the skip; shapes (D, N), or (2, D, N)
    when bidirectional. Initialisation as the reference: alpha_raw, delta_raw ~ N(0, 0.2);
    beta ~ N(0, 0.02) + [1, -1, 1, ...] over N; gamma, omega ~ N(0, 1). The EMA coefficients take no weight decay.
    """

    def __init__(
        self,
        dim: int,
        ndim: int = 16,
        bidirectional: bool = False,
        truncation: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.dim, self.ndim, self.bidirectional, self.truncation = dim, ndim, bidirectional, truncation
        shape = (2, dim, ndim) if bidirectional else (dim, ndim)
        fk = dict(device=device, dtype=dtype)
        self.alpha_raw = mark_optim(nn.Parameter(torch.randn(shape, **fk) * 0.2))
        self.delta_raw = mark_optim(nn.Parameter(torch.randn(shape, **fk) * 0.2))
        sign = torch.ones(ndim, **fk)
        sign[1::2] = -1
        self.beta = mark_optim(nn.Parameter(torch.randn(shape, **fk) * 0.02 + sign))
        self.gamma = mark_optim(nn.Parameter(torch.randn(shape, **fk)))
        self.omega = nn.Parameter(torch.randn(dim, **fk))

    def coefficients(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(alpha, delta, beta, gamma) as `multiseq.functional.ema` takes them (gamma already scaled)."""
        return (
            torch.sigmoid(self.alpha_raw),
            torch.sigmoid(self.delta_raw),
            self.beta,
            self.gamma * math.sqrt(1.0 / self.ndim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, D) with padded positions already zero -> (B, L, D)."""
        y = ema(x.transpose(1, 2), *self.coefficients(), bidirectional=self.bidirectional, truncation=self.truncation)
        return F.silu(y.transpose(1, 2) + self.omega * x)

    def step(self, x: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """One causal step: x (B, D), state h (B, D, N) or None -> (y (B, D), new h)."""
        if self.bidirectional:
            raise RuntimeError("a bidirectional EMA cannot be streamed; build the block with causal=True")
        if self.truncation is not None:
            raise RuntimeError("a truncated EMA kernel has no finite recurrent state; use truncation=None to stream")
        alpha, delta, beta, gamma = self.coefficients()
        h0 = x.new_zeros(x.shape[0], self.dim, self.ndim) if h is None else h
        h = alpha * beta * x[..., None] + (1 - alpha * delta) * h0
        return F.silu((gamma * h).sum(-1) + self.omega * x), h


# ----------------------------------------------------------------------------------------------------------------
# Relative position bias
# ----------------------------------------------------------------------------------------------------------------


class SimpleRelativeBias(nn.Module):
    """One learned scalar per lag i - j in (-P, P); longer lags share the end values. Returns (2P - 1,)."""

    def __init__(self, max_positions: int, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.bias = nn.Parameter(torch.randn(2 * max_positions - 1, device=device, dtype=dtype) * 0.02)

    def forward(self, span: int) -> Tensor:
        return self.bias


class RotaryRelativeBias(nn.Module):
    """Bias `a . R(i - j) b` from two learned vectors rotated by the lag (Mega's rotary bias). Returns (2P - 1,).

    Rotating a by position i and b by position j and taking their dot product depends only on i - j, so the bias is
    computed directly per lag, for any span.
    """

    def __init__(self, zdim: int, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if zdim % 2:
            raise ValueError(f"rotary relative bias needs an even zdim, got {zdim}")
        half = zdim // 2
        self.a = nn.Parameter(torch.randn(zdim, device=device, dtype=dtype) * 0.02)
        self.b = nn.Parameter(torch.randn(zdim, device=device, dtype=dtype) * 0.02)
        self.register_buffer(
            "freq", torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / half),
            persistent=False,
        )

    def forward(self, span: int) -> Tensor:
        lag = torch.arange(-(span - 1), span, device=self.a.device, dtype=torch.float32)  # i - j
        ang = (-lag[:, None] * self.freq[None]).to(self.a.dtype)  # rotate b by j - i relative to a
        cos, sin = ang.cos(), ang.sin()
        a1, a2 = self.a.chunk(2)
        b1, b2 = self.b.chunk(2)
        rb1 = b1 * cos - b2 * sin
        rb2 = b1 * sin + b2 * cos
        return (a1 * rb1 + a2 * rb2).sum(-1)


# ----------------------------------------------------------------------------------------------------------------
# The block
# ----------------------------------------------------------------------------------------------------------------


@register_block("mega")
class MegaBlock(nn.Module):
    """Mega layer (EMA + gated attention) followed by the normalised feed-forward; manages its own residual.

    Args:
        dim: width D.
        causal: causal EMA and attention (enables `step`).
        dropout: dropout on the EMA output, the attention output and the residual branches.
        chunk: attention chunk size C; 0 attends over the whole sequence (quadratic). Lengths that are not a
            multiple of C are padded and masked automatically.
        ndim: EMA dimension N per channel.
        zdim: shared q/k dimension z. hdim: value / gate width (default 2 * D).
        attention_fn: `softmax`, `laplace` or `relu2`.
        rel_pos: `simple` (learned scalar per lag), `rotary` or `none`.
        max_positions: lags of the simple bias when unchunked (longer lags are clamped); chunked uses C.
        norm: `layer`, `scale`, `rms` or `batch` (masked statistics).
        prenorm: norm before each sub-layer (True) or after the residual (False).
        ffn_mult: hidden width of the normalised FFN as a multiple of D; 0 disables it.
        bidirectional: two-sided EMA (default: not causal).
        truncation: EMA kernel length limit (None: the sequence length).
    """

    manages_residual = True

    def __init__(
        self,
        dim: int,
        *,
        causal: bool = False,
        dropout: float = 0.0,
        chunk: int = 0,
        ndim: int = 16,
        zdim: int = 64,
        hdim: int | None = None,
        attention_fn: str = "softmax",
        rel_pos: str = "simple",
        max_positions: int = 1024,
        norm: str = "layer",
        prenorm: bool = True,
        ffn_mult: float = 2.0,
        bidirectional: bool | None = None,
        truncation: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0:
            raise ValueError(f"chunk must be an int >= 0 (0 = no chunking), got {chunk!r}")
        if attention_fn not in ATTENTION_FNS:
            raise ValueError(f"attention_fn {attention_fn!r} is not valid; use one of {', '.join(ATTENTION_FNS)}")
        if rel_pos not in REL_POS:
            raise ValueError(f"rel_pos {rel_pos!r} is not valid; use one of {', '.join(REL_POS)}")
        bidirectional = (not causal) if bidirectional is None else bool(bidirectional)
        if causal and bidirectional:
            raise ValueError("a causal Mega block cannot use a bidirectional EMA; set bidirectional=False")
        if truncation is not None and (isinstance(truncation, bool) or not isinstance(truncation, int) or truncation < 1):
            raise ValueError(f"truncation must be None or an int >= 1, got {truncation!r}")
        fk = dict(device=device, dtype=dtype)
        hdim = 2 * dim if hdim is None else hdim
        self.dim, self.zdim, self.hdim, self.chunk = dim, zdim, hdim, chunk
        self.causal, self.attention_fn, self.prenorm = causal, attention_fn, prenorm
        self.norm = make_mega_norm(norm, dim, **fk)
        self.ema = MultiHeadEMA(dim, ndim, bidirectional=bidirectional, truncation=truncation, **fk)
        self.v_proj = nn.Linear(dim, hdim, **fk)
        self.mx_proj = nn.Linear(dim, 2 * dim + zdim + hdim, **fk)
        self.h_proj = nn.Linear(hdim, dim, **fk)
        self.qk_gamma = nn.Parameter(torch.randn(2, zdim, **fk) * 0.02)
        self.qk_beta = nn.Parameter(torch.zeros(2, zdim, **fk))
        self.rel: nn.Module | None
        if rel_pos == "simple":
            self.rel = SimpleRelativeBias(chunk if chunk else max_positions, **fk)
        elif rel_pos == "rotary":
            self.rel = RotaryRelativeBias(zdim, **fk)
        else:
            self.rel = None
        self.drop = nn.Dropout(dropout)
        hidden = int(round(dim * ffn_mult))
        self.ffn = None
        if hidden > 0:
            self.ffn_norm = make_mega_norm(norm, dim, **fk)
            self.fc1 = nn.Linear(dim, hidden, **fk)
            self.fc2 = nn.Linear(hidden, dim, **fk)
            self.ffn = True
        for lin in (self.v_proj, self.mx_proj, self.h_proj) + ((self.fc1, self.fc2) if self.ffn else ()):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    # -- pieces shared by forward and step --------------------------------------------------------------------

    def _bias(self, span: int) -> Tensor | None:
        return None if self.rel is None else self.rel(span)

    def _gates(self, xn: Tensor, mx: Tensor) -> tuple[Tensor, ...]:
        """xn, mx: (..., D) -> v (..., h), u (..., D), q, k (..., z), r (..., h), hx (..., D)."""
        v = F.silu(self.v_proj(xn))
        u, zr, hx = torch.split(self.mx_proj(mx), [self.dim, self.zdim + self.hdim, self.dim], dim=-1)
        z, r = torch.split(F.silu(zr), [self.zdim, self.hdim], dim=-1)
        q = z * self.qk_gamma[0] + self.qk_beta[0]
        k = z * self.qk_gamma[1] + self.qk_beta[1]
        return v, torch.sigmoid(u), q, k, r, hx

    def _finish(self, x: Tensor, u: Tensor, attn: Tensor, r: Tensor, hx: Tensor, mask: Tensor | None) -> Tensor:
        h = self.drop(F.silu(hx + self.h_proj(self.drop(attn) * r)))
        out = x + u * (h - x)
        if not self.prenorm:
            out = self.norm(out, mask)
        if self.ffn:
            y = self.ffn_norm(out, mask) if self.prenorm else out
            out = out + self.drop(self.fc2(self.drop(F.silu(self.fc1(y)))))
            if not self.prenorm:
                out = self.ffn_norm(out, mask)
        return out

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool (True = real) or None -> (B, L, D)."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"Mega expects x of shape (B, L, {self.dim}), got {tuple(x.shape)}")
        L = x.shape[1]
        xn = self.norm(x, mask) if self.prenorm else x
        if mask is not None:
            xn = xn * mask[..., None].to(xn.dtype)  # pads are zero before the EMA reads them
        mx = self.drop(self.ema(xn))
        v, u, q, k, r, hx = self._gates(xn, mx)
        span = min(self.chunk, L) if self.chunk else L
        attn = chunk_attention(
            q[:, None], k[:, None], v[:, None], self.chunk, mask, self.attention_fn, self._bias(max(span, 1)), self.causal
        )[:, 0]
        return self._finish(x, u, attn, r, hx, mask)

    # -- streaming ----------------------------------------------------------------------------------------------

    def init_state(self) -> dict[str, Any]:
        """Empty streaming state: EMA state, keys/values of the current partial chunk, position."""
        return {"h": None, "k": None, "v": None, "pos": 0}

    @torch.no_grad()
    def step(self, x: Tensor, state: dict[str, Any] | None = None) -> tuple[Tensor, dict[str, Any]]:
        """One token of a causal block: x (B, D) -> (y (B, D), new state). Equals `forward` on the prefix.

        The state holds the EMA hidden state (B, D, N) and the keys/values of the current chunk only (all of them
        when unchunked). Norms use their eval behaviour (batch norm: running statistics).
        """
        if not self.causal:
            raise RuntimeError("step() needs a causal block (causal=True): a bidirectional layer sees the future")
        if x.dim() != 2 or x.shape[-1] != self.dim:
            raise ValueError(f"step expects x of shape (B, {self.dim}), got {tuple(x.shape)}")
        st = dict(self.init_state() if state is None else state)
        pos = st["pos"]
        xn = self.norm(x[:, None], None)[:, 0] if self.prenorm else x
        mx, st["h"] = self.ema.step(xn, st["h"])
        v, u, q, k, r, hx = self._gates(xn, mx)
        if self.chunk and pos % self.chunk == 0:
            st["k"] = st["v"] = None  # a new chunk starts: earlier keys are out of reach
        st["k"] = k[:, None] if st["k"] is None else torch.cat([st["k"], k[:, None]], 1)
        st["v"] = v[:, None] if st["v"] is None else torch.cat([st["v"], v[:, None]], 1)
        n = st["k"].shape[1]
        bias_row = None
        if self.rel is not None:
            span = self.chunk if self.chunk else pos + 1
            bias = self._bias(span)
            P = (bias.shape[0] + 1) // 2
            lags = torch.arange(n - 1, -1, -1, device=x.device).clamp(max=P - 1)  # i - j for the cached keys
            bias_row = bias[lags + P - 1]
        attn = attention_row(q, st["k"], st["v"], self.attention_fn, bias_row)
        out = self._finish(x[:, None], u[:, None], attn[:, None], r[:, None], hx[:, None], None)[:, 0]
        st["pos"] = pos + 1
        return out, st


@register_block("mega_chunk")
class MegaChunkBlock(MegaBlock):
    """Mega-chunk: `mega` with attention inside chunks (default 128): linear time and memory in length."""

    def __init__(self, dim: int, *, chunk: int = 128, **kwargs: Any) -> None:
        if not chunk:
            raise ValueError("mega_chunk needs chunk >= 1; use the `mega` block for unchunked attention")
        super().__init__(dim, chunk=chunk, **kwargs)

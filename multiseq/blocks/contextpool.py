"""ContextPool (Huang, Talbott, Jaitly, Susskind, ICML 2022): adaptive context pooling before attention.

For every token a light predictor gives a pooling weight `w_j > 0` and a support size (a Gaussian width
`sigma_i > 0`); the features are pooled over a Gaussian neighbourhood before the wrapped attention block sees them:

    y_i = sum_j g_i(j) w_j x_j / sum_j g_i(j) w_j,   g_i(j) = exp(-|p_j - p_i|^2 / (2 sigma_i^2)),

over the band `|j - i| <= radius` (1-D) or the square `|row_j - row_i| <= radius, |col_j - col_i| <= radius`
(2-D patch grids; the isotropic Gaussian is the product of a row and a column Gaussian), real tokens j only.

Computation: the pooling is a softmax over the band with logits `log w_j - |p_j - p_i|^2 / (2 sigma_i^2)`, so it
is computed like blocked local attention: blocks of query rows against their neighbour blocks, one batched matmul,
memory O(L * radius) (O(L * radius * cols) on a grid), never an L x L matrix and never an `unfold` copy per token.
The softmax form is also the numerically safe one: sigma -> 0 gives exactly the identity, no 0/0.

Placement: the paper puts ContextPool after each attention block, so the next attention block reads pooled
features (n tokens in, n out). As a wrapper inside the backbone's pre-norm residual layer, `contextpool+X` pools
the normalised input that X's queries, keys and values are computed from, while the residual stream keeps the
unpooled tokens (sigma -> 0 or radius 0 gives exactly X). The `contextpool_stack_*` presets (presets/hybrids.py)
reproduce the paper's order: a plain first attention layer, pooled attention in every later layer.

`context_pool_ref` (dense, the formula above, float64-friendly) is the specification; `context_pool` is the
banded CPU path, and the Triton kernel in `multiseq.kernels.triton_contextpool` is the fused CUDA path.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.registry import register_block
from multiseq.errors import ConfigError
from multiseq.kernels import register_fused, use_fused

register_fused("context_pool", "Triton banded Gaussian context pooling (online softmax)", needs=("cuda", "triton"))

# 1 / (2 sigma^2) is capped so that a vanishing sigma gives the identity (0 * cap = 0 on the diagonal), not 0/0.
_MAX_PRECISION = 1e12
# Smallest block of query tokens (rounded up to whole grid rows): small blocks waste little outside the band.
_MIN_BLOCK = 16


def _check_pool_args(
    x: Tensor, weights: Tensor, sigma: Tensor, radius: int, mask: Tensor | None, cols: int, causal: bool
) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, L, D), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be floating point, got {x.dtype}")
    B, L, _ = x.shape
    for name, t in (("weights", weights), ("sigma", sigma)):
        if t.shape != (B, L):
            raise ValueError(f"{name} must have shape (B, L) = {(B, L)}, got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {t.dtype}")
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols must be an int >= 1, got {cols!r}")
    if L % cols:
        raise ValueError(f"length {L} is not a whole number of grid rows of {cols} columns")
    if causal and cols > 1:
        raise ValueError("causal pooling is defined for 1-D sequences only (cols=1)")
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"key_padding_mask must be bool (True = real token), got {mask.dtype}")
        if mask.shape != (B, L):
            raise ValueError(f"key_padding_mask must have shape (B, L) = {(B, L)}, got {tuple(mask.shape)}")


def _check_positive(weights: Tensor, sigma: Tensor) -> None:
    if not bool((weights > 0).all()):
        raise ValueError("weights must be positive (and not NaN) everywhere")
    if not bool((sigma > 0).all()):
        raise ValueError("sigma must be positive (and not NaN) everywhere")


def context_pool_ref(
    x: Tensor,
    weights: Tensor,
    sigma: Tensor,
    radius: int,
    key_padding_mask: Tensor | None = None,
    *,
    cols: int = 1,
    causal: bool = False,
) -> Tensor:
    """Dense reference: the ContextPool formula with the (L, L) Gaussian matrix (the specification; O(L^2)).

    Args:
        x: (B, L, D) features. weights, sigma: (B, L) positive.
        radius: band half-width (1-D: |j - i| <= radius; grid: per axis).
        key_padding_mask: (B, L) bool, True = real token; pads never enter and their outputs are zero.
        cols: grid columns (1 = a plain sequence; L = rows * cols, row-major).
        causal: 1-D only; j <= i.

    Returns:
        (B, L, D).
    """
    _check_pool_args(x, weights, sigma, radius, key_padding_mask, cols, causal)
    _check_positive(weights, sigma)
    B, L, D = x.shape
    pos = torch.arange(L, device=x.device)
    row, col = pos // cols, pos % cols
    dr = row[None, :] - row[:, None]  # (L, L): key row - query row
    dc = col[None, :] - col[:, None]
    allowed = (dr.abs() <= radius) & (dc.abs() <= radius)
    if causal:
        allowed = allowed & (pos[None, :] <= pos[:, None])
    dist2 = (dr.square() + dc.square()).to(x.dtype)
    g = torch.exp(-dist2[None] / (2 * sigma[:, :, None].square()))  # (B, L, L)
    a = g * weights[:, None, :] * allowed[None]
    if key_padding_mask is not None:
        a = a * key_padding_mask[:, None, :]
    den = a.sum(-1, keepdim=True)
    y = torch.einsum("bij,bjd->bid", a, x) / torch.where(den > 0, den, torch.ones_like(den))
    if key_padding_mask is not None:
        y = y * key_padding_mask[..., None]
    return y


def _blocked_pool(
    x: Tensor, log_weights: Tensor, sigma: Tensor, radius: int, mask: Tensor | None, cols: int, causal: bool
) -> Tensor:
    """Banded pooling as a softmax over each query's band, computed per block of grid rows. Shapes as `context_pool`."""
    B, L, D = x.shape
    if L == 0:
        return x.clone()
    C = cols
    rows = L // C
    # Blocks of at least `radius` rows, so each block's band lies within its neighbour blocks.
    rb = min(rows, max(radius, -(-_MIN_BLOCK // C), 1))
    block = rb * C
    nb = -(-rows // rb)
    left = 1 if (radius > 0 and nb > 1) else 0
    right = 0 if causal else left
    pad = nb * block - L
    if mask is None:
        mask = torch.ones(B, L, dtype=torch.bool, device=x.device)
    span = left + 1 + right
    W = span * block
    # One padded copy of x (neighbour blocks on both ends, the tail to whole blocks); each block's window of
    # neighbour blocks is then a strided view (unfold), with no per-block concatenation.
    before, after = left * block, pad + right * block
    xw = F.pad(x, (0, 0, before, after)).unfold(1, W, block).transpose(-1, -2)  # (B, nb, W, D) view
    lww = F.pad(log_weights, (before, after)).unfold(1, W, block)  # (B, nb, W)
    mw = F.pad(mask, (before, after), value=False).unfold(1, W, block)  # (B, nb, W)
    q = torch.arange(block, device=x.device)
    k = torch.arange(W, device=x.device) - before  # key offset from the block start
    qr, qc = q // C, q % C
    kr, kc = torch.div(k, C, rounding_mode="floor"), k % C
    dr = kr[None, :] - qr[:, None]  # (block, W)
    dc = kc[None, :] - qc[:, None]
    band = (dr.abs() <= radius) & (dc.abs() <= radius)
    if causal:
        band = band & (k[None, :] <= q[:, None])
    dist2 = (dr.square() + dc.square()).to(x.dtype)
    precision = (0.5 / F.pad(sigma, (0, pad), value=1.0).square()).clamp(max=_MAX_PRECISION)
    precision = rearrange(precision, "b (n c) -> b n c", c=block)  # (B, nb, block)
    qpad = rearrange(F.pad(~mask, (0, pad), value=True), "b (n c) -> b n c", c=block)
    # A real query always sees itself; a padded one sees its whole band (finite softmax), and is zeroed below.
    allowed = band & (mw[:, :, None, :] | qpad[..., None])  # (B, nb, block, W)
    logits = torch.where(allowed, lww[:, :, None, :] - dist2 * precision[..., None], float("-inf"))
    p = torch.softmax(logits, dim=-1)
    y = torch.matmul(p, xw)  # (B, nb, block, D)
    y = rearrange(y, "b n c d -> b (n c) d")[:, :L]
    return y * mask[..., None].to(y.dtype)


def context_pool_log(
    x: Tensor,
    log_weights: Tensor,
    sigma: Tensor,
    radius: int,
    key_padding_mask: Tensor | None = None,
    *,
    cols: int = 1,
    causal: bool = False,
) -> Tensor:
    """`context_pool` with `log_weights = log(weights)` (any real values): the block's entry point.

    Chooses the fused Triton path on CUDA (see `multiseq.kernels`), else the banded PyTorch path.
    """
    _check_pool_args(x, log_weights, sigma, radius, key_padding_mask, cols, causal)
    if use_fused("context_pool", x) and x.shape[1] > 0:
        from multiseq.kernels.triton_contextpool import triton_context_pool

        return triton_context_pool(x, log_weights, sigma, radius, key_padding_mask, cols=cols, causal=causal)
    return _blocked_pool(x, log_weights, sigma, radius, key_padding_mask, cols, causal)


def context_pool(
    x: Tensor,
    weights: Tensor,
    sigma: Tensor,
    radius: int,
    key_padding_mask: Tensor | None = None,
    *,
    cols: int = 1,
    causal: bool = False,
) -> Tensor:
    """Adaptive Gaussian context pooling, banded (memory O(L * radius)).

    `y[i] = sum_j g_i(j) w_j x_j / sum_j g_i(j) w_j` over `|j - i| <= radius` and real j, with
    `g_i(j) = exp(-(j - i)^2 / (2 sigma_i^2))`; on a grid (`cols > 1`) distances and the band are 2-D.

    Args:
        x: (B, L, D).
        weights: (B, L) positive pooling weights w_j.
        sigma: (B, L) positive Gaussian widths sigma_i (support sizes).
        radius: band half-width, an int >= 0 (0 gives the identity).
        key_padding_mask: (B, L) bool, True = real token. Pads never enter; their outputs are zero.
        cols: grid columns for 2-D pooling of a row-major (rows, cols) grid; 1 for sequences.
        causal: pool only j <= i (sequences only).

    Returns:
        (B, L, D).
    """
    _check_pool_args(x, weights, sigma, radius, key_padding_mask, cols, causal)
    _check_positive(weights, sigma)
    if key_padding_mask is not None:
        # Pads never enter, even as a NaN times a zero probability.
        x = x.masked_fill(~key_padding_mask[..., None], 0.0)
    return context_pool_log(x, weights.log(), sigma, radius, key_padding_mask, cols=cols, causal=causal)


class _Predictor(nn.Module):
    """The mapping m(.) from features to pooling logits: linear D -> hidden, depthwise conv (k, or k x k on a
    grid) for local context, GELU, linear hidden -> outputs. Light: O(L * D * hidden) work.

    The depthwise conv is a sum of k (k * k) shifted views, channels last: on CPU this is far cheaper than a
    grouped `Conv1d` (measured 1 ms against 140 ms forward at L = 4096).
    `(B, L, D) -> (B, L, outputs)`; inputs at padded positions must already be zero.
    """

    def __init__(
        self, dim: int, hidden: int, outputs: int, kernel: int, grid: tuple[int, int] | None, causal: bool,
        device: Any = None, dtype: Any = None,
    ) -> None:
        super().__init__()
        f = dict(device=device, dtype=dtype)
        self.grid, self.causal, self.kernel = grid, causal, kernel
        # No bias before the conv: a zero (padded) input stays zero, so pads add nothing through the conv.
        self.proj = nn.Linear(dim, hidden, bias=False, **f)
        taps = kernel if grid is None else kernel * kernel
        self.conv_weight = nn.Parameter(torch.randn(taps, hidden, **f) / math.sqrt(taps))
        self.conv_bias = nn.Parameter(torch.zeros(hidden, **f))
        self.out = nn.Linear(hidden, outputs, **f)
        # Start near uniform weights and sigma_max / 2 (small output weights, zero bias), then learn.
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def _conv(self, h: Tensor) -> Tensor:
        k = self.kernel
        if self.grid is None:
            L = h.shape[1]
            # Causal: look only left; otherwise centred (zero padding = the border of an unpadded sequence).
            lo = k - 1 if self.causal else (k - 1) // 2
            hp = F.pad(h, (0, 0, lo, k - 1 - lo))
            taps = [hp[:, t : t + L] for t in range(k)]
        else:
            R, C = self.grid
            g = rearrange(h, "b (r c) d -> b r c d", r=R)
            hp = F.pad(g, (0, 0, k // 2, k // 2, k // 2, k // 2))
            taps = [rearrange(hp[:, a : a + R, c : c + C], "b r c d -> b (r c) d") for a in range(k) for c in range(k)]
        out = self.conv_bias
        for t, view in enumerate(taps):
            out = out + view * self.conv_weight[t]
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.gelu(self._conv(self.proj(x))))


@register_block("contextpool")
class ContextPool(nn.Module):
    """Wrapper: adaptive context pooling of the input, then the wrapped block (`contextpool+local`, `+attention`).

    Args:
        inner: the wrapped block (built by the registry from the name after `+`).
        radius: band half-width of the pooling window (per axis on a grid).
        sigma_max: largest Gaussian width; the predicted width is `sigma_max * sigmoid(.)` (default radius / 2).
        grid: (rows, cols) for 2-D pooling of a patch grid (from the adapter's `EmbedSpec.grid`); a sequence of
            rows * cols + 1 tokens is taken as a CLS token then the grid (the CLS token is not pooled).
        adaptive_weights: predict per-token weights; False = uniform weights (the paper's fixed-weight ablation).
        adaptive_support: predict per-token widths; False = the fixed width `sigma` for every token (ablation).
        sigma: the fixed width used when `adaptive_support=False` (default sigma_max / 2).
        hidden: predictor width (default max(8, dim // 4)); kernel: predictor depthwise conv size (odd).
    """

    wrapper = True

    def __init__(
        self,
        dim: int,
        *,
        inner: nn.Module,
        causal: bool = False,
        dropout: float = 0.0,
        radius: int = 8,
        sigma_max: float | None = None,
        grid: tuple[int, int] | list[int] | None = None,
        adaptive_weights: bool = True,
        adaptive_support: bool = True,
        sigma: float | None = None,
        hidden: int | None = None,
        kernel: int = 3,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if getattr(inner, "manages_residual", False):
            raise ConfigError(f"contextpool cannot wrap {type(inner).__name__}: it manages its own residual path")
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            raise ConfigError(f"radius must be an int >= 0, got {radius!r}")
        if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"kernel must be an odd int >= 1, got {kernel!r}")
        self.grid = None if grid is None else tuple(int(g) for g in grid)
        if self.grid is not None and (len(self.grid) != 2 or min(self.grid) < 1):
            raise ConfigError(f"grid must be (rows, cols) of positive ints, got {grid!r}")
        if self.grid is not None and causal:
            raise ConfigError("causal ContextPool is defined for sequences, not grids")
        self.sigma_max = float(sigma_max) if sigma_max is not None else max(radius / 2.0, 0.5)
        self.fixed_sigma = float(sigma) if sigma is not None else self.sigma_max / 2.0
        if self.sigma_max <= 0 or self.fixed_sigma <= 0:
            raise ConfigError(f"sigma_max and sigma must be positive, got {self.sigma_max}, {self.fixed_sigma}")
        self.inner, self.causal, self.radius = inner, causal, radius
        self.adaptive_weights, self.adaptive_support = bool(adaptive_weights), bool(adaptive_support)
        outputs = int(self.adaptive_weights) + int(self.adaptive_support)
        self.predictor = None
        if outputs:
            hidden = hidden or max(8, dim // 4)
            self.predictor = _Predictor(dim, hidden, outputs, kernel, self.grid, causal, device=device, dtype=dtype)

    def pooling_parameters(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Log pooling weights and widths `(B, L)` each, predicted from `x: (B, L, D)` (pads zeroed)."""
        B, L, _ = x.shape
        logw = torch.zeros(B, L, device=x.device, dtype=x.dtype)
        sigma = torch.full((B, L), self.fixed_sigma, device=x.device, dtype=x.dtype)
        if self.predictor is not None:
            z = self.predictor(x)  # (B, L, outputs)
            i = 0
            if self.adaptive_weights:
                logw, i = F.logsigmoid(z[..., 0]), 1
            if self.adaptive_support:
                sigma = self.sigma_max * torch.sigmoid(z[..., i])
        return logw, sigma

    def pool(self, x: Tensor, mask: Tensor) -> Tensor:
        """The pooled features `(B, L, D)` that the wrapped block receives."""
        x = x * mask[..., None].to(x.dtype)
        cls = None
        cols = 1
        if self.grid is not None:
            R, C = self.grid
            if x.shape[1] == R * C + 1:
                cls, x, mask = x[:, :1], x[:, 1:], mask[:, 1:]
            elif x.shape[1] != R * C:
                raise ValueError(
                    f"ContextPool was built for a {R}x{C} grid ({R * C} tokens, or {R * C + 1} with CLS) "
                    f"but got {x.shape[1]} tokens; set the block's grid option to the adapter's EmbedSpec.grid"
                )
            cols = C
        logw, sigma = self.pooling_parameters(x, mask)
        y = context_pool_log(x, logw, sigma, self.radius, mask, cols=cols, causal=self.causal)
        return y if cls is None else torch.cat([cls, y], dim=1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool (True = real) -> (B, L, D): `inner(pool(x), mask)`."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return self.inner(self.pool(x, mask), mask)

    def extra_repr(self) -> str:
        return (
            f"radius={self.radius}, sigma_max={self.sigma_max:g}, grid={self.grid}, "
            f"adaptive_weights={self.adaptive_weights}, adaptive_support={self.adaptive_support}"
        )

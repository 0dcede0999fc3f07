"""ContextPool: the pooling op against the paper's formula and its properties, and the wrapper block."""

from __future__ import annotations

import math

import pytest
import torch

from multiseq.blocks import build_block
from multiseq.errors import ConfigError
from multiseq.functional import context_pool, context_pool_ref


def loop_formula(x, w, s, radius, mask, cols=1, causal=False):
    """The formula written out token by token (an independent truth for the dense reference)."""
    B, L, D = x.shape
    y = torch.zeros_like(x)
    for b in range(B):
        for i in range(L):
            if mask is not None and not mask[b, i]:
                continue
            num, den = torch.zeros(D, dtype=x.dtype), 0.0
            for j in range(L):
                dr, dc = j // cols - i // cols, j % cols - i % cols
                if abs(dr) > radius or abs(dc) > radius or (causal and j > i):
                    continue
                if mask is not None and not mask[b, j]:
                    continue
                g = math.exp(-(dr * dr + dc * dc) / (2 * float(s[b, i]) ** 2))
                num = num + g * w[b, j] * x[b, j]
                den = den + g * float(w[b, j])
            y[b, i] = num / den
    return y


def _inputs(L, B=2, D=5, seed=0, padded=True, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed + L)
    x = torch.randn(B, L, D, generator=g, dtype=dtype)
    w = torch.rand(B, L, generator=g, dtype=dtype) + 0.1
    s = torch.rand(B, L, generator=g, dtype=dtype) * 3 + 0.3
    m = torch.ones(B, L, dtype=torch.bool)
    if padded and L > 1:
        m[-1, L - max(1, L // 3) :] = False
    return x, w, s, m


@pytest.mark.parametrize("L,radius,cols,causal", [(1, 0, 1, False), (3, 1, 1, False), (17, 4, 1, False),
                                                  (17, 3, 1, True), (20, 2, 5, False)])
def test_reference_is_the_formula(L, radius, cols, causal):
    x, w, s, m = _inputs(L, B=2, D=3)
    torch.testing.assert_close(context_pool_ref(x, w, s, radius, m, cols=cols, causal=causal),
                               loop_formula(x, w, s, radius, m, cols, causal), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("L", [1, 3, 127, 129])
@pytest.mark.parametrize("radius", [0, 1, 7, 70])
@pytest.mark.parametrize("causal", [False, True])
def test_banded_matches_reference_forward_and_backward(L, radius, causal):
    x, w, s, m = _inputs(L)
    leaves = [t.clone().requires_grad_() for t in (x, w, s)]
    refs = [t.clone().requires_grad_() for t in (x, w, s)]
    got = context_pool(*leaves, radius, m, causal=causal)
    want = context_pool_ref(*refs, radius, m, causal=causal)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
    gy = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, leaves, gy), torch.autograd.grad(want, refs, gy)):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-9)


@pytest.mark.parametrize("rows,cols,radius", [(1, 7, 2), (6, 8, 1), (9, 4, 3), (5, 5, 9)])
def test_grid_banded_matches_reference(rows, cols, radius):
    x, w, s, m = _inputs(rows * cols, padded=False)
    m[1, -cols:] = False  # a padded last row
    torch.testing.assert_close(context_pool(x, w, s, radius, m, cols=cols),
                               context_pool_ref(x, w, s, radius, m, cols=cols), atol=1e-12, rtol=1e-10)


def test_grid_gaussian_is_separable():
    # Uniform weights and one width: the 2-D pooling is a row pooling followed by a column pooling.
    R, C, radius = 6, 7, 2
    x, _, _, _ = _inputs(R * C, B=1, padded=False)
    ones = torch.ones(1, R * C, dtype=x.dtype)
    sigma = torch.full_like(ones, 1.3)
    both = context_pool(x, ones, sigma, radius, cols=C)
    along_rows = context_pool(x.reshape(R, C, -1), ones.reshape(R, C), sigma.reshape(R, C), radius)  # each row
    xt = along_rows.transpose(0, 1)  # (C, R, D): each column as a sequence
    along_cols = context_pool(xt, ones.reshape(C, R), sigma.reshape(C, R), radius).transpose(0, 1)
    torch.testing.assert_close(both, along_cols.reshape(1, R * C, -1), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("cols", [1, 4])
def test_vanishing_sigma_is_identity(cols):
    x, w, _, m = _inputs(24)
    s = torch.full_like(w, 1e-4)
    for op in (context_pool, context_pool_ref):
        y = op(x, w, s, 5, m, cols=cols)
        torch.testing.assert_close(y[m], x[m], atol=1e-14, rtol=1e-14)
        assert (y[~m] == 0).all()


def test_wide_uniform_pooling_is_masked_mean():
    L = 40
    x, _, _, m = _inputs(L)
    ones = torch.ones(2, L, dtype=x.dtype)
    wide = torch.full_like(ones, 1e6)
    y = context_pool(x, ones, wide, L, m)
    for b in range(2):
        mean = x[b][m[b]].mean(0)
        torch.testing.assert_close(y[b][m[b]], mean.expand(int(m[b].sum()), -1), atol=1e-9, rtol=1e-9)


def test_pads_never_enter():
    L, keep = 30, 19
    x, w, s, m = _inputs(L, padded=False)
    m[:, keep:] = False
    x2, w2 = x.clone(), w.clone()
    x2[:, keep:] = torch.randn_like(x2[:, keep:]) * 100
    x2[0, -1] = float("nan")
    w2[:, keep:] = 1e3
    for op in (context_pool, context_pool_ref):
        a = op(x, w, s, 6, m)
        b = op(x2, w2, s, 6, m) if op is context_pool else op(x2.nan_to_num(), w2, s, 6, m)
        short = op(x[:, :keep], w[:, :keep], s[:, :keep], 6)
        torch.testing.assert_close(a[m], b[m], atol=0, rtol=0)
        torch.testing.assert_close(a[:, :keep], short, atol=1e-12, rtol=1e-12)
        assert (a[~m] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_shift_equivariance_away_from_borders(causal):
    L, r, shift = 60, 5, 7
    x, w, s, _ = _inputs(L, padded=False)
    y = context_pool(x, w, s, r, causal=causal)
    ys = context_pool(x.roll(shift, 1), w.roll(shift, 1), s.roll(shift, 1), r, causal=causal)
    inner = slice(r + shift, L - r)  # positions whose band stays inside the sequence after the shift
    torch.testing.assert_close(ys[:, inner], y.roll(shift, 1)[:, inner], atol=1e-12, rtol=1e-12)


def test_causal_ignores_the_future():
    x, w, s, _ = _inputs(30, padded=False)
    x2, w2 = x.clone(), w.clone()
    x2[:, 20:] += 5
    w2[:, 20:] *= 3
    torch.testing.assert_close(context_pool(x, w, s, 6, causal=True)[:, :20],
                               context_pool(x2, w2, s, 6, causal=True)[:, :20], atol=0, rtol=0)


@pytest.mark.parametrize("op", [context_pool, context_pool_ref])
@pytest.mark.parametrize("cols,causal", [(1, False), (1, True), (3, False)])
def test_gradcheck(op, cols, causal):
    x, w, s, m = _inputs(9 if cols == 3 else 10, B=2, D=3)
    if cols == 3:
        m[-1, -3:] = False  # a padded last row
    args = [t.clone().requires_grad_() for t in (x, w, s)]
    fn = lambda a, b, c: op(a, b, c, 3, m, cols=cols, causal=causal)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args, fast_mode=True)


def test_float32_error_within_budget():
    # Against float64, the banded float32 path errs no more than twice the dense float32 reference.
    x, w, s, m = _inputs(300, D=16)
    exact = context_pool_ref(x, w, s, 12, m)
    f32 = [t.float() for t in (x, w, s)]
    err_banded = (context_pool(*f32, 12, m).double() - exact).abs().max()
    err_ref = (context_pool_ref(*f32, 12, m).double() - exact).abs().max()
    assert err_banded <= 2 * err_ref + 1e-6


def test_bad_input_is_refused():
    x, w, s, m = _inputs(12)
    with pytest.raises(ValueError, match="positive"):
        context_pool(x, w * 0, s, 3, m)
    with pytest.raises(ValueError, match="positive"):
        context_pool(x, w, -s, 3, m)
    with pytest.raises(ValueError, match="positive"):
        context_pool(x, w * float("nan"), s, 3, m)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        context_pool(x, w[:, :5], s, 3, m)
    with pytest.raises(ValueError, match="radius"):
        context_pool(x, w, s, -1, m)
    with pytest.raises(TypeError, match="bool"):
        context_pool(x, w, s, 3, m.long())
    with pytest.raises(ValueError, match="grid rows"):
        context_pool(x, w, s, 3, m, cols=5)
    with pytest.raises(ValueError, match="causal"):
        context_pool(x, w, s, 3, m, cols=4, causal=True)
    with pytest.raises(ValueError, match=r"\(B, L, D\)"):
        context_pool(x[0], w, s, 3, m)


# ----------------------------------------------------------------------------------------------- the block
def _block(name="contextpool+local", dim=16, **opts):
    inner = opts.pop("inner", {"heads": 2, "window": 8} if name.endswith("local") else {"heads": 2})
    return build_block(name, dim, inner=inner, **opts).double()


def test_block_pools_then_runs_the_inner_block():
    blk = _block(radius=3)
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    m = torch.ones(2, 20, dtype=torch.bool)
    m[1, 14:] = False
    logw, sigma = blk.pooling_parameters(x * m[..., None], m)
    assert (sigma > 0).all() and (sigma < blk.sigma_max).all() and (logw < 0).all()
    pooled = context_pool_ref(x * m[..., None], logw.exp(), sigma, 3, m)
    torch.testing.assert_close(blk(x, m), blk.inner(pooled, m), atol=1e-12, rtol=1e-10)


def test_radius_zero_is_the_inner_block():
    blk = _block("contextpool+attention", radius=0)
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    m = torch.ones(2, 10, dtype=torch.bool)
    torch.testing.assert_close(blk(x, m), blk.inner(x, m), atol=1e-12, rtol=1e-12)


def test_ablations_fixed_weights_and_fixed_support():
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    m = torch.ones(1, 12, dtype=torch.bool)
    fixed = _block(radius=4, adaptive_weights=False, adaptive_support=False, sigma=1.5)
    assert fixed.predictor is None
    want = fixed.inner(context_pool_ref(x, torch.ones(1, 12, dtype=x.dtype), torch.full((1, 12), 1.5, dtype=x.dtype), 4), m)
    torch.testing.assert_close(fixed(x, m), want, atol=1e-12, rtol=1e-10)
    only_w = _block(radius=4, adaptive_support=False, sigma=2.0)
    logw, sigma = only_w.pooling_parameters(x, m)
    assert only_w.predictor.out.out_features == 1 and (sigma == 2.0).all() and logw.std() > 0
    only_s = _block(radius=4, adaptive_weights=False)
    logw, sigma = only_s.pooling_parameters(x, m)
    assert only_s.predictor.out.out_features == 1 and (logw == 0).all() and sigma.std() > 0


def test_causal_block_ignores_the_future():
    blk = build_block("contextpool+local", 16, causal=True, radius=4, inner={"heads": 2, "window": 6}).double()
    x = torch.randn(1, 24, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 15:] = torch.randn_like(x2[:, 15:])
    m = torch.ones(1, 24, dtype=torch.bool)
    torch.testing.assert_close(blk(x, m)[:, :15], blk(x2, m)[:, :15], atol=1e-12, rtol=1e-12)


def test_grid_block_and_cls_token():
    blk = _block(radius=1, grid=[3, 4])
    x = torch.randn(2, 13, 16, dtype=torch.float64)  # CLS + 3 x 4 grid
    m = torch.ones(2, 13, dtype=torch.bool)
    pooled = blk.pool(x, m)
    torch.testing.assert_close(pooled[:, 0], x[:, 0], atol=0, rtol=0)  # CLS passes unpooled
    logw, sigma = blk.pooling_parameters(x[:, 1:], m[:, 1:])
    torch.testing.assert_close(pooled[:, 1:], context_pool_ref(x[:, 1:], logw.exp(), sigma, 1, cols=4))
    with pytest.raises(ValueError, match="3x4 grid"):
        blk(torch.randn(1, 10, 16, dtype=torch.float64), torch.ones(1, 10, dtype=torch.bool))


def test_block_configuration_errors():
    with pytest.raises(ConfigError, match="manages its own residual"):
        build_block("contextpool+mega", 16)
    with pytest.raises(ConfigError, match="no option"):
        build_block("contextpool+local", 16, radious=3)
    with pytest.raises(ConfigError, match="radius"):
        build_block("contextpool+local", 16, radius=-1)
    with pytest.raises(ConfigError, match="grid"):
        build_block("contextpool+local", 16, grid=[4])
    with pytest.raises(ConfigError, match="not a wrapper"):
        build_block("local+contextpool", 16)

"""Mega ops and blocks against independent truths: the EMA recurrence, the dense chunk-attention specification,
the Laplace formula, streaming vs full forward, causality, padding, gradcheck, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import multiseq.functional as MF
from multiseq.blocks import build_block
from multiseq.blocks._fft import next_fast_len
from multiseq.blocks.mega_ops import ema_conv, ema_kernel, ema_kernel_ref
from multiseq.kernels import why_not

F64 = torch.float64


def _coeffs(shape, g):
    alpha = torch.rand(shape, generator=g, dtype=F64) * 0.9 + 0.05
    delta = torch.rand(shape, generator=g, dtype=F64) * 0.9 + 0.05
    return alpha, delta, torch.randn(shape, generator=g, dtype=F64), torch.randn(shape, generator=g, dtype=F64)


# ---------------------------------------------------------------------------------------------------------------
# EMA
# ---------------------------------------------------------------------------------------------------------------


def test_ema_ref_is_the_recurrence_by_hand():
    # One channel, one EMA dimension: h_t = a*b*x_t + (1 - a*d) h_{t-1}, y = g*h.
    x = torch.tensor([[[1.0, 2.0, -1.0]]], dtype=F64)
    a, d, b, g = (torch.tensor([[v]], dtype=F64) for v in (0.5, 0.4, 2.0, 3.0))
    q = 1 - 0.5 * 0.4
    h0 = 1.0
    h1 = 2.0 + q * h0
    h2 = -1.0 + q * h1
    torch.testing.assert_close(MF.ema_ref(x, a, d, b, g), torch.tensor([[[3 * h0, 3 * h1, 3 * h2]]], dtype=F64))


@pytest.mark.parametrize("L", [1, 3, 37, 130])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_ema_fft_matches_recurrence(L, bidirectional):
    g = torch.Generator().manual_seed(L)
    D, N = 3, 4
    x = torch.randn(2, D, L, generator=g, dtype=F64)
    c = _coeffs((2, D, N) if bidirectional else (D, N), g)
    torch.testing.assert_close(MF.ema(x, *c, bidirectional=bidirectional), MF.ema_ref(x, *c, bidirectional=bidirectional))


def test_ema_bidirectional_is_forward_plus_reversed_backward():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 9, generator=g, dtype=F64)
    c = _coeffs((2, 2, 3), g)
    fwd = MF.ema_ref(x, *(t[0] for t in c))
    bwd = MF.ema_ref(x.flip(-1), *(t[1] for t in c)).flip(-1)
    torch.testing.assert_close(MF.ema(x, *c, bidirectional=True), fwd + bwd)
    # The backward half sees only the future: y[t] - forward[t] does not depend on x[:t].
    x2 = x.clone()
    x2[..., :4] = torch.randn(1, 2, 4, dtype=F64)
    d1 = MF.ema(x, *c, bidirectional=True) - MF.ema(x, *(t[0] for t in c))
    d2 = MF.ema(x2, *c, bidirectional=True) - MF.ema(x2, *(t[0] for t in c))
    torch.testing.assert_close(d1[..., 4:], d2[..., 4:])


def test_ema_truncation_is_a_truncated_kernel():
    g = torch.Generator().manual_seed(2)
    D, N, L, T = 2, 3, 20, 6
    x = torch.randn(1, D, L, generator=g, dtype=F64)
    a, d, b, gm = _coeffs((D, N), g)
    k = ema_kernel_ref(gm * a * b, torch.log1p(-a * d), T)  # (D, T)
    want = torch.stack([sum(k[:, j] * x[0, :, t - j] for j in range(min(T, t + 1))) for t in range(L)], -1)[None]
    torch.testing.assert_close(MF.ema(x, a, d, b, gm, truncation=T), want)


@pytest.mark.parametrize("length", [1, 2, 3, 127, 129, 1000])
def test_ema_kernel_chunked_vandermonde_matches_dense(length):
    g = torch.Generator().manual_seed(length)
    w = torch.randn(4, 5, generator=g, dtype=F64)
    logq = -torch.rand(4, 5, generator=g, dtype=F64) * 0.3
    torch.testing.assert_close(ema_kernel(w, logq, length), ema_kernel_ref(w, logq, length))


def test_ema_gradcheck():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 5, generator=g, dtype=F64, requires_grad=True)
    c = [t.requires_grad_() for t in _coeffs((2, 2, 2), g)]
    assert torch.autograd.gradcheck(lambda *a: MF.ema(*a, bidirectional=True), (x, *c), fast_mode=True)
    assert torch.autograd.gradcheck(lambda *a: MF.ema_ref(*a, bidirectional=True), (x, *c), fast_mode=True)
    kf = torch.randn(2, 4, generator=g, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(ema_conv, (x, kf, None))


def test_fft_size_is_smooth_and_large_enough():
    for n in (1, 2, 7, 97, 2049, 20001):
        m = next_fast_len(n, even=True)
        assert m >= n and m % 2 == 0
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        assert m == 1


def test_ema_bad_input():
    x = torch.randn(1, 3, 5)
    c = (torch.rand(3, 2),) * 4
    with pytest.raises(ValueError, match=r"\(2, D, N\)"):
        MF.ema(x, *c, bidirectional=True)
    with pytest.raises(ValueError, match="alpha"):
        MF.ema(x, torch.rand(4, 2), *c[1:])
    with pytest.raises(ValueError, match=r"\(B, D, L\)"):
        MF.ema(torch.randn(3, 5), *c)


# ---------------------------------------------------------------------------------------------------------------
# Laplace and chunk attention
# ---------------------------------------------------------------------------------------------------------------


def test_laplace_constants_and_values():
    mu, sigma = math.sqrt(0.5), math.sqrt(1 / (4 * math.pi))
    s = torch.tensor([-1.0, 0.0, 0.3, mu, 1.0, 2.5], dtype=F64)
    want = torch.tensor([0.5 * (1 + math.erf((v - mu) / (sigma * math.sqrt(2)))) for v in s.tolist()], dtype=F64)
    torch.testing.assert_close(MF.laplace(s), want)
    assert MF.laplace(torch.tensor(mu)).item() == pytest.approx(0.5)
    assert abs(mu - 0.707107) < 1e-6 and abs(sigma - 0.282095) < 1e-6


def _qkv(L, g, e=5, B=2):
    q = torch.randn(B, 1, L, 4, generator=g, dtype=F64)
    return q, torch.randn(B, 1, L, 4, generator=g, dtype=F64), torch.randn(B, 1, L, e, generator=g, dtype=F64)


@pytest.mark.parametrize("fn", ["softmax", "laplace", "relu2"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunk", [0, 4, 5])
def test_chunk_attention_matches_dense_spec(fn, causal, chunk):
    g = torch.Generator().manual_seed(7)
    L = 13  # not a multiple of 4 or 5: automatic chunk padding
    q, k, v = (t.requires_grad_() for t in _qkv(L, g))
    m = torch.ones(2, L, dtype=torch.bool)
    m[1, 9:] = False
    bias = torch.randn(2 * max(chunk, L) - 1, generator=g, dtype=F64, requires_grad=True)
    a = MF.chunk_attention(q, k, v, chunk, m, fn, bias, causal)
    r = MF.chunk_attention_ref(q, k, v, chunk, m, fn, bias, causal)
    torch.testing.assert_close(a, r)
    gy = torch.randn_like(a)
    ga = torch.autograd.grad(a, (q, k, v, bias), gy)
    gr = torch.autograd.grad(r, (q, k, v, bias), gy)
    for x, y in zip(ga, gr):
        torch.testing.assert_close(x, y)


def test_chunk_attention_ref_gradcheck():
    g = torch.Generator().manual_seed(8)
    q, k, v = (t.requires_grad_() for t in _qkv(5, g, e=3, B=1))
    for fn in ("softmax", "laplace"):
        assert torch.autograd.gradcheck(lambda a, b, c: MF.chunk_attention_ref(a, b, c, 2, fn=fn), (q, k, v))


def test_chunk_attention_one_chunk_equals_unchunked():
    g = torch.Generator().manual_seed(9)
    q, k, v = _qkv(11, g)
    for fn in ("softmax", "laplace"):
        full = MF.chunk_attention(q, k, v, 0, fn=fn)
        torch.testing.assert_close(MF.chunk_attention(q, k, v, 11, fn=fn), full)
        torch.testing.assert_close(MF.chunk_attention(q, k, v, 64, fn=fn), full)


def test_chunk_attention_chunks_are_independent():
    g = torch.Generator().manual_seed(10)
    q, k, v = _qkv(12, g)
    v2 = v.clone()
    v2[:, :, 4:8] = 100.0  # change the second chunk only
    a, b = MF.chunk_attention(q, k, v, 4), MF.chunk_attention(q, k, v2, 4)
    torch.testing.assert_close(a[:, :, :4], b[:, :, :4])
    torch.testing.assert_close(a[:, :, 8:], b[:, :, 8:])


def test_chunk_attention_fully_masked_rows_are_zero_not_nan():
    g = torch.Generator().manual_seed(11)
    q, k, v = _qkv(8, g)
    m = torch.zeros(2, 8, dtype=torch.bool)
    m[0, :3] = True
    for fn in ("softmax", "laplace", "relu2"):
        out = MF.chunk_attention(q, k, v, 4, m, fn)
        assert torch.isfinite(out).all()
        assert out[1].abs().max() == 0 and out[0, :, 4:].abs().max() == 0


def test_chunk_attention_bad_input():
    q = torch.randn(1, 1, 4, 2)
    with pytest.raises(ValueError, match="chunk"):
        MF.chunk_attention(q, q, q, -1)
    with pytest.raises(ValueError, match="softmax"):
        MF.chunk_attention(q, q, q, 2, fn="gelu")
    with pytest.raises(ValueError, match="key_padding_mask"):
        MF.chunk_attention(q, q, q, 2, torch.ones(1, 4))


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------

STREAM_CASES = [
    ("mega", {}),
    ("mega_chunk", {"chunk": 4}),
    ("mega_chunk", {"chunk": 5, "attention_fn": "laplace", "rel_pos": "rotary"}),
    ("mega", {"attention_fn": "relu2", "norm": "scale", "prenorm": False}),
    ("mega_chunk", {"chunk": 3, "norm": "batch", "rel_pos": "none"}),
    ("mega_chunk", {"chunk": 4, "norm": "rms", "ffn_mult": 0.0}),
]


@pytest.mark.parametrize("name,opts", STREAM_CASES)
def test_step_equals_full_forward(name, opts):
    torch.manual_seed(0)
    block = build_block(name, 8, causal=True, dtype=F64, ndim=3, zdim=6, **opts).eval()
    x = torch.randn(2, 11, 8, dtype=F64)
    full = block(x)
    state, ys = None, []
    for t in range(11):
        y, state = block.step(x[:, t], state)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys, 1), full)
    if block.chunk:
        assert state["k"].shape[1] == 11 % block.chunk or state["k"].shape[1] == block.chunk  # partial chunk only


@pytest.mark.parametrize("name,opts", STREAM_CASES[:3])
def test_causal_block_ignores_the_future(name, opts):
    torch.manual_seed(1)
    block = build_block(name, 8, causal=True, dtype=F64, ndim=3, zdim=6, **opts).eval()
    x = torch.randn(1, 10, 8, dtype=F64)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(1, 4, 8, dtype=F64)
    torch.testing.assert_close(block(x)[:, :6], block(x2)[:, :6])


@pytest.mark.parametrize("opts", [{"chunk": 4}, {"chunk": 5, "attention_fn": "laplace"}, {"chunk": 4, "norm": "batch"}])
def test_chunk_padding_never_changes_real_outputs(opts):
    torch.manual_seed(2)
    block = build_block("mega_chunk", 8, dtype=F64, ndim=3, zdim=6, **opts)
    x = torch.randn(2, 13, 8, dtype=F64)  # 13 is not a multiple of the chunk: padded automatically
    m = torch.ones(2, 13, dtype=torch.bool)
    m[1, 7:] = False
    x2 = x.clone()
    x2[1, 7:] = 50 * torch.randn(6, 8, dtype=F64)
    for train in (True, False):  # batch norm: batch statistics, then running ones
        block.train(train)
        a, b = block(x, m), block(x2, m)
        torch.testing.assert_close(a[1, :7], b[1, :7])
        torch.testing.assert_close(a[0], b[0])
    block.eval()
    # The padded row equals the same sequence given alone, unpadded (bidirectional EMA: pads are zero first).
    torch.testing.assert_close(block(x, m)[1, :7], block(x[1:, :7])[0])


def test_block_gradcheck():
    torch.manual_seed(3)
    block = build_block("mega_chunk", 4, dtype=F64, chunk=3, ndim=2, zdim=2, hdim=4, attention_fn="laplace")
    x = torch.randn(1, 5, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: block(t), (x,), fast_mode=True)


def test_ema_coefficients_marked_without_weight_decay():
    block = build_block("mega", 8)
    marked = {n for n, p in block.named_parameters() if getattr(p, "_optim", None) == {"weight_decay": 0.0}}
    assert marked == {f"ema.{n}" for n in ("alpha_raw", "delta_raw", "beta", "gamma")}
    assert block.manages_residual is True


def test_ema_initialisation_follows_the_paper():
    torch.manual_seed(4)
    ema = build_block("mega", 256, ndim=16).ema
    sign = torch.tensor([1.0, -1.0] * 8)
    assert (ema.beta - sign).std() < 0.03 and ema.beta.shape == (2, 256, 16)  # bidirectional by default
    assert 0.15 < ema.alpha_raw.std() < 0.25 and 0.15 < ema.delta_raw.std() < 0.25
    assert 0.9 < ema.gamma.std() < 1.1 and 0.8 < ema.omega.std() < 1.2


def test_block_bad_options_and_input():
    with pytest.raises(ValueError, match="attention_fn"):
        build_block("mega", 8, attention_fn="gelu")
    with pytest.raises(ValueError, match="norm"):
        build_block("mega", 8, norm="group")
    with pytest.raises(ValueError, match="chunk"):
        build_block("mega_chunk", 8, chunk=0)
    with pytest.raises(ValueError, match="bidirectional"):
        build_block("mega", 8, causal=True, bidirectional=True)
    block = build_block("mega", 8)
    with pytest.raises(ValueError, match=r"\(B, L, 8\)"):
        block(torch.randn(1, 4, 7))
    with pytest.raises(RuntimeError, match="causal"):
        block.step(torch.randn(1, 8))


def test_length_one_and_fully_masked_rows_are_finite():
    torch.manual_seed(5)
    block = build_block("mega_chunk", 8, chunk=4)
    assert torch.isfinite(block(torch.randn(2, 1, 8))).all()
    m = torch.zeros(2, 6, dtype=torch.bool)
    m[0, :2] = True
    assert torch.isfinite(block(torch.randn(2, 6, 8), m)).all()


def test_fused_ema_path_is_registered_and_explains_itself():
    reason = why_not("ema_kernel")
    if not torch.cuda.is_available():
        assert reason is not None and ("CUDA" in reason or "MULTISEQ_KERNELS" in reason)

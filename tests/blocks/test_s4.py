"""S4 family: kernels against dense complex128 references, gradcheck, discretisation limits, convolution vs step,
padding, bidirectional symmetry, kernel doubling, optimiser tags, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from multiseq.blocks import build_block
from multiseq.blocks.s4 import DiagKernel, DPLRKernel, hippo_legs, legs_dplr
from multiseq.blocks.s4_kernels import _cauchy, _cauchy_chunk, _cauchy_pairs
from multiseq.errors import ConfigError
from multiseq.functional import (
    dplr_kernel,
    dplr_kernel_ref,
    fft_conv,
    fft_conv_ref,
    vandermonde_kernel,
    vandermonde_kernel_ref,
)

D64 = torch.float64
C128 = torch.complex128


def _modes(H, N, seed=0, decay=0.1):
    g = torch.Generator().manual_seed(seed)
    a = torch.complex(-torch.rand(H, N, generator=g, dtype=D64) * decay, torch.randn(H, N, generator=g, dtype=D64))
    C = torch.complex(torch.randn(H, N, generator=g, dtype=D64), torch.randn(H, N, generator=g, dtype=D64))
    return a, C


def _dplr(H=2, N=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda: torch.randn(H, N, generator=g, dtype=D64)  # noqa: E731
    Lam = torch.complex(-torch.rand(H, N, generator=g, dtype=D64) - 0.1, 3 * r())
    P, B, C = (torch.complex(r(), r()) * s for s in (0.5, 1.0, 1.0))
    dt = torch.rand(H, generator=g, dtype=D64) * 0.1 + 0.01
    return Lam, P, B, C, dt


@pytest.mark.parametrize("L", [1, 3, 127, 129, 1000])
def test_vandermonde_matches_reference(L):
    a, C = _modes(4, 6)
    ref = vandermonde_kernel_ref(a, C, L)
    for chunk in (None, 8, 64):
        torch.testing.assert_close(vandermonde_kernel(a, C, L, chunk=chunk), ref, rtol=1e-10, atol=1e-10)


def test_vandermonde_backward_and_gradcheck():
    a, C = _modes(2, 3)
    a.requires_grad_(), C.requires_grad_()
    g = torch.randn(2, 29, dtype=D64)
    ga, gc = torch.autograd.grad((vandermonde_kernel(a, C, 29, chunk=8) * g).sum(), (a, C))
    ra, rc = torch.autograd.grad((vandermonde_kernel_ref(a, C, 29) * g).sum(), (a, C))
    torch.testing.assert_close(ga, ra)
    torch.testing.assert_close(gc, rc)
    assert torch.autograd.gradcheck(lambda a, C: vandermonde_kernel_ref(a, C, 7), (a, C))
    assert torch.autograd.gradcheck(lambda a, C: vandermonde_kernel(a, C, 13, chunk=8), (a, C))


def test_vandermonde_float32_error_within_budget():
    # fp32 factored kernel vs fp64 truth: no worse than 2x the plain fp32 reference's error (+ a tiny floor).
    a, C = _modes(8, 16, decay=0.01)
    L = 2000
    truth = vandermonde_kernel_ref(a, C, L)
    a32, C32 = a.to(torch.complex64), C.to(torch.complex64)
    err_fast = (vandermonde_kernel(a32, C32, L).double() - truth).abs().max()
    err_ref = (vandermonde_kernel_ref(a32, C32, L).double() - truth).abs().max()
    assert err_fast <= 2 * err_ref + 1e-5


@pytest.mark.parametrize("L", [1, 3, 127, 129])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fft_conv_matches_direct(L, bidirectional):
    u = torch.randn(2, 3, L, dtype=D64, requires_grad=True)
    K = torch.randn(*((2,) if bidirectional else ()), 3, L, dtype=D64, requires_grad=True)
    D = torch.randn(3, dtype=D64, requires_grad=True)
    y = fft_conv(u, K, D, bidirectional)
    yr = fft_conv_ref(u, K, D, bidirectional)
    torch.testing.assert_close(y, yr)
    g = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad((y * g).sum(), (u, K, D)), torch.autograd.grad((yr * g).sum(), (u, K, D))):
        torch.testing.assert_close(a, b)


def test_fft_conv_gradcheck_and_kernel_lengths():
    u = torch.randn(1, 2, 5, dtype=D64, requires_grad=True)
    K = torch.randn(2, 2, 5, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, K: fft_conv_ref(u, K, bidirectional=True), (u, K))
    assert torch.autograd.gradcheck(lambda u, K: fft_conv(u, K, bidirectional=True), (u, K))
    # A longer kernel is truncated, a shorter one zero-extended.
    long = torch.randn(2, 9, dtype=D64)
    torch.testing.assert_close(fft_conv(u, long), fft_conv_ref(u, long[:, :5]))
    short = torch.randn(2, 2, dtype=D64)
    torch.testing.assert_close(fft_conv(u, short), fft_conv_ref(u, short))


def test_bidirectional_symmetric_kernel_commutes_with_flip():
    # Two-sided kernel symmetric in the lag (k1[j] = k0[j + 1]) => conv(flip u) == flip(conv u).
    L = 33
    k0 = torch.randn(3, L + 1, dtype=D64)
    K = torch.stack([k0[:, :L], k0[:, 1:]])
    u = torch.randn(2, 3, L, dtype=D64)
    torch.testing.assert_close(fft_conv(u.flip(-1), K, bidirectional=True), fft_conv(u, K, bidirectional=True).flip(-1))


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("L", [1, 3, 16, 17])
def test_dplr_kernel_matches_dense_powers(symmetric, L):
    args = _dplr()
    torch.testing.assert_close(dplr_kernel(*args, L, symmetric=symmetric), dplr_kernel_ref(*args, L, symmetric=symmetric))


def test_dplr_gradcheck_and_chunked_cauchy():
    Lam, P, B, C, dt = (t.requires_grad_() for t in _dplr(1, 2))
    assert torch.autograd.gradcheck(lambda *t: dplr_kernel(*t, 6), (Lam, P, B, C, dt))
    assert torch.autograd.gradcheck(lambda *t: dplr_kernel_ref(*t, 4), (Lam, P, B, C, dt))
    # The chunked (checkpointed) Cauchy sum equals the one-shot sum, values and gradients.
    v = torch.randn(4, 2, 3, dtype=C128, requires_grad=True)
    x = torch.randn(2, 3, dtype=C128, requires_grad=True)
    z = torch.polar(torch.ones(9, dtype=D64), torch.linspace(0, 3, 9, dtype=D64))
    a, b = _cauchy(v, x, 1 - z, 1 + z, budget=6), _cauchy_chunk(v, x, 1 - z, 1 + z)
    torch.testing.assert_close(a, b)
    g = torch.randn_like(a)
    for p, q in zip(torch.autograd.grad((a * g.conj()).real.sum(), (v, x)), torch.autograd.grad((b * g.conj()).real.sum(), (v, x))):
        torch.testing.assert_close(p, q)


def test_paired_cauchy_equals_the_sum_over_the_augmented_system():
    v = torch.randn(4, 2, 3, dtype=C128, requires_grad=True)
    x = torch.randn(2, 3, dtype=C128, requires_grad=True)
    z = torch.polar(torch.ones(9, dtype=D64), torch.linspace(0, 3, 9, dtype=D64))
    full = lambda t: torch.cat([t, t.conj()], -1)  # noqa: E731
    a, b = _cauchy_pairs(v, x, 1 - z, 1 + z, budget=6), _cauchy_chunk(full(v), full(x), 1 - z, 1 + z)
    torch.testing.assert_close(a, b)
    g = torch.randn_like(a)
    for p, q in zip(torch.autograd.grad((a * g.conj()).real.sum(), (v, x)), torch.autograd.grad((b * g.conj()).real.sum(), (v, x))):
        torch.testing.assert_close(p, q)
    assert torch.autograd.gradcheck(lambda v_, x_: _cauchy_pairs(v_, x_, 1 - z, 1 + z, budget=4), (v, x))


def test_legs_dplr_reconstructs_hippo():
    A, _, B = hippo_legs(8)
    Lam, P, Bt, V = legs_dplr(8)
    full = lambda t: torch.cat([t, t.conj()], -1)  # noqa: E731
    Vf = full(V)
    rebuilt = Vf @ (torch.diag(full(Lam)) - full(P)[:, None] * full(P).conj()[None, :]) @ Vf.conj().T
    torch.testing.assert_close(rebuilt, A.to(C128))
    torch.testing.assert_close(Vf @ full(Bt), B.to(C128))
    assert torch.allclose(Lam.real, torch.full_like(Lam.real, -0.5)) and (Lam.imag > 0).all()


def test_zoh_matches_matrix_exponential_and_bilinear_limit():
    torch.manual_seed(0)
    k = DiagKernel(3, 8, init="lin", dtype=D64)
    log_dA, dB, C = k.discrete()
    dt = torch.exp(k.log_dt)
    A, B = k.A(), torch.view_as_complex(k.B)
    # ZOH of each scalar mode via the augmented matrix exponential exp([[A, B], [0, 0]] dt) (independent of expm1).
    aug = torch.zeros(3, 4, 2, 2, dtype=C128)
    aug[..., 0, 0], aug[..., 0, 1] = A * dt[:, None], B * dt[:, None]
    E = torch.linalg.matrix_exp(aug)
    torch.testing.assert_close(torch.exp(log_dA), E[..., 0, 0])
    torch.testing.assert_close(dB, E[..., 0, 1])
    # As dt -> 0, ZOH and bilinear kernels agree to O(dt).
    kz = DiagKernel(2, 8, init="inv", disc="zoh", dt_min=1e-5, dt_max=1e-5, dtype=D64)
    kb = DiagKernel(2, 8, init="inv", disc="bilinear", dt_min=1e-5, dt_max=1e-5, dtype=D64)
    kb.load_state_dict(kz.state_dict())
    Kz, Kb = kz(200), kb(200)
    assert ((Kz - Kb).abs().max() / Kz.abs().max()) < 1e-3


CASES = [
    ("s4d", {}),
    ("s4d", {"disc": "bilinear", "init": "lin"}),
    ("s4d", {"init": "legs"}),
    ("s4d", {"init": "real"}),
    ("s4", {}),
    ("dss", {"l_max": 32}),
    ("gss", {}),
]


@pytest.mark.parametrize("name,opts", CASES)
def test_convolution_equals_step_mode(name, opts):
    torch.manual_seed(0)
    block = build_block(name, 16, causal=True, d_state=8, dtype=D64, **opts).eval()
    if name == "dss":  # some growing modes (Re(A) > 0) exercise the shifted softmax
        with torch.no_grad():
            block.kernel.A_re[:, :2] = 0.3
    x = torch.randn(2, 20, 16, dtype=D64)
    y = block(x)
    state = block.default_state(2)
    steps = []
    for t in range(20):
        y_t, state = block.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y)
    # Causal: the future never changes the past.
    x2 = x.clone()
    x2[:, 12:] += 3
    torch.testing.assert_close(block(x2)[:, :12], y[:, :12])


def test_dss_kernel_matches_softmax_formula():
    torch.manual_seed(0)
    k = DiagKernel(2, 6, init="legs", disc="dss", l_max=40, dtype=D64)
    with torch.no_grad():
        k.A_re[0, 0] = 0.5  # a growing mode
    dt = torch.exp(k.log_dt)[:, None]
    A, C = k.A(), torch.view_as_complex(k.C)[0]
    ell = torch.arange(40, dtype=D64)
    P = dt[..., None] * A[..., None] * ell  # (H, N, L)
    soft = torch.exp(P) / torch.exp(P).sum(-1, keepdim=True)
    want = 2 * ((C / A)[..., None] * soft).sum(1).real  # DSS-softmax: K = W Lambda^-1 row-softmax(P)
    torch.testing.assert_close(k(40)[0], want)
    torch.testing.assert_close(k(25)[0], want[:, :25])


@pytest.mark.parametrize("name", ["s4d", "s4", "dss", "gss"])
def test_padding_never_reaches_real_outputs_bidirectional(name):
    torch.manual_seed(0)
    block = build_block(name, 16, d_state=8, dtype=D64).eval()
    assert block.bidirectional
    x = torch.randn(2, 24, 16, dtype=D64)
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[1, 10:] = False
    noisy = x.clone()
    noisy[1, 10:] = 100 * torch.randn(14, 16, dtype=D64)
    y, y2 = block(x, mask), block(noisy, mask)
    torch.testing.assert_close(y[mask], y2[mask])
    torch.testing.assert_close(block(x[1:, :10])[0], y[1, :10])


def test_s4_kernel_length_doubling_keeps_kernel():
    torch.manual_seed(0)
    k = DPLRKernel(3, 8, dtype=D64)
    assert int(k.Lk) == 64
    short = k(50)
    longer = k(200)  # doubles to 256, updating C~ so that C is unchanged
    assert int(k.Lk) == 256 and longer.shape == (1, 3, 200)
    torch.testing.assert_close(longer[..., :50], short, rtol=1e-7, atol=1e-9)


def test_optimizer_tags_and_frozen_buffers():
    block = build_block("s4d", 16, d_state=8, lr=2e-3)
    tagged = {n for n, p in block.named_parameters() if hasattr(p, "_optim")}
    assert tagged == {"kernel.log_dt", "kernel.A_re", "kernel.A_im", "kernel.B"}
    assert all(p._optim == {"lr": 2e-3, "weight_decay": 0.0} for n, p in block.named_parameters() if n in tagged)
    gss = build_block("gss", 16, d_state=8)
    names = dict(gss.named_parameters())
    assert "kernel.log_dt" not in names and "kernel.B" not in names
    assert torch.allclose(torch.exp(gss.kernel.log_dt), torch.ones(()))
    s4 = build_block("s4", 16, d_state=8)
    assert {n for n, p in s4.named_parameters() if hasattr(p, "_optim")} == {
        "kernel.log_dt", "kernel.L_re", "kernel.L_im", "kernel.P", "kernel.B"}


def test_bad_input_errors():
    with pytest.raises(ConfigError, match="even"):
        build_block("s4d", 16, d_state=7)
    with pytest.raises(ConfigError, match="bidirectional"):
        build_block("s4d", 16, causal=True, bidirectional=True)
    with pytest.raises(ConfigError, match="init"):
        build_block("s4d", 16, init="hippo")
    with pytest.raises(ConfigError, match="bottleneck"):
        build_block("gss", 18, bottleneck=4)
    with pytest.raises(ValueError, match="l_max"):
        build_block("dss", 8, d_state=4, l_max=16)(torch.randn(1, 17, 8))
    with pytest.raises(ValueError, match="step"):
        build_block("s4d", 8, d_state=4).default_state(1)
    with pytest.raises(TypeError, match="complex"):
        vandermonde_kernel(torch.randn(2, 3), torch.randn(2, 3), 4)
    with pytest.raises(ValueError, match=r"\(H, N\)"):
        vandermonde_kernel(*_modes(2, 3)[:1], torch.zeros(2, 4, dtype=C128), 4)
    with pytest.raises(ValueError, match="K must have shape"):
        fft_conv(torch.randn(1, 2, 5), torch.randn(3, 5))
    with pytest.raises(ValueError, match="dt must have shape"):
        dplr_kernel(*_dplr()[:4], torch.rand(3), 4)


def test_length_zero_and_one():
    block = build_block("s4d", 8, d_state=4)
    assert block(torch.randn(2, 0, 8)).shape == (2, 0, 8)
    assert torch.isfinite(block(torch.randn(2, 1, 8))).all()
    assert math.isclose(float(vandermonde_kernel(*_modes(1, 2), 1)[0, 0]), float(vandermonde_kernel_ref(*_modes(1, 2), 1)[0, 0]))


def test_step_cache_follows_parameter_updates():
    torch.manual_seed(0)
    block = build_block("s4d", 8, causal=True, d_state=4, dtype=D64).eval()
    x = torch.randn(1, 6, 8, dtype=D64)
    with torch.no_grad():
        block.step(x[:, 0], block.default_state(1))  # fills the cache
        block.kernel.A_im.mul_(2.0)  # an optimiser-style in-place update
        state, outs = block.default_state(1), []
        for t in range(6):
            y, state = block.step(x[:, t], state)
            outs.append(y)
        torch.testing.assert_close(torch.stack(outs, 1), block(x))

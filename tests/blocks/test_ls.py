"""`long_short_attention` (blocked) and its fused FlexAttention path against a float64 reference written here from
the issue's definition, independently of the library's mask code."""

from __future__ import annotations

import math

import pytest
import torch

from multiseq.functional import long_short_attention, long_short_attention_ref
from multiseq.kernels.flex_ls import flex_long_short_attention


def attended(i: int, L: int, r: int, window: int, causal: bool) -> tuple[list[int], list[int]]:
    """Global and local key indices query i attends to (before padding), straight from the issue text."""
    s = i // window
    lo, hi = s * window - window // 2, (s + 1) * window + window // 2
    local = [j for j in range(max(lo, 0), min(hi, L)) if not causal or j <= i]
    if causal and r:
        per = r // -(-L // window)
        glob = [g for g in range(r) if g // per < s]
    else:
        glob = list(range(r))
    return glob, local


def loop_reference(q, k, v, kg, vg, window, kpm, causal):
    B, H, L, d = q.shape
    r = kg.shape[2]
    out = torch.zeros_like(q)
    for i in range(L):
        glob, local = attended(i, L, r, window, causal)
        for b in range(B):
            loc = [j for j in local if kpm is None or kpm[b, j]]
            keys = torch.cat([kg[b, :, glob], k[b, :, loc]], dim=1)  # (H, n, d)
            vals = torch.cat([vg[b, :, glob], v[b, :, loc]], dim=1)
            if keys.shape[1] == 0:
                continue
            s = (q[b, :, i : i + 1] @ keys.transpose(-1, -2)) / math.sqrt(d)  # (H, 1, n)
            out[b, :, i] = (s.softmax(-1) @ vals)[:, 0]
    return out


def make(L, window, causal, r_seg=3, B=2, H=2, d=8, padded=True, dtype=torch.float64, seed=None):
    g = torch.Generator().manual_seed(L * 31 + window if seed is None else seed)
    r = r_seg * -(-L // window) if causal else r_seg
    q, k, v = (torch.randn(B, H, L, d, generator=g, dtype=dtype) for _ in range(3))
    kg, vg = (torch.randn(B, H, r, d, generator=g, dtype=dtype) for _ in range(2))
    kpm = None
    if padded:
        kpm = torch.ones(B, L, dtype=torch.bool)
        kpm[-1, max(1, L - L // 3) :] = False
    return q, k, v, kg, vg, kpm


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("L,window", [(1, 1), (1, 8), (3, 1), (3, 4), (127, 16), (129, 7), (129, 64)])
def test_blocked_matches_loop_reference(L, window, causal):
    args = make(L, window, causal, H=1, d=4)
    want = loop_reference(*args[:5], window, args[5], causal)
    got = long_short_attention(*args[:5], window, args[5], causal)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("causal", [False, True])
def test_dense_ref_matches_loop_reference(causal):
    args = make(129, 33, causal, H=1, d=4)
    torch.testing.assert_close(
        long_short_attention_ref(*args[:5], 33, args[5], causal),
        loop_reference(*args[:5], 33, args[5], causal),
        atol=1e-10,
        rtol=1e-9,
    )


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [10, 128, 1000, 2048])
def test_long_length_matches_dense_reference(window, causal):
    args = make(1000, window, causal, B=1, H=1, d=4)
    torch.testing.assert_close(
        long_short_attention(*args[:5], window, args[5], causal),
        long_short_attention_ref(*args[:5], window, args[5], causal),
        atol=1e-10,
        rtol=1e-9,
    )


def test_no_global_keys_is_a_segment_window():
    # r = 0: pure segment-wise window; with a window covering everything it is full attention.
    q, k, v, _, _, kpm = make(40, 8, False)
    empty = q[:, :, :0]
    want = loop_reference(q, k, v, empty, empty, 8, kpm, False)
    torch.testing.assert_close(long_short_attention(q, k, v, empty, empty, 8, kpm), want, atol=1e-10, rtol=1e-9)
    full = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(long_short_attention(q, k, v, empty, empty, 64), full, atol=1e-10, rtol=1e-9)


def test_fully_masked_rows_are_zero_not_nan():
    q, k, v, _, _, _ = make(20, 4, False, padded=False)
    empty = q[:, :, :0]
    kpm = torch.zeros(2, 20, dtype=torch.bool)
    kpm[0, :3] = True
    out = long_short_attention(q, k, v, empty, empty, 4, kpm)
    assert torch.isfinite(out).all()
    assert out[1].abs().max() == 0 and out[0, :, 8:].abs().max() == 0


@pytest.mark.parametrize("causal", [False, True])
def test_padding_invariance(causal):
    q, k, v, kg, vg, _ = make(50, 8, causal, padded=False)
    kpm = torch.ones(2, 50, dtype=torch.bool)
    kpm[:, 30:] = False
    base = long_short_attention(q, k, v, kg, vg, 8, kpm, causal)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 30:] = torch.randn_like(k2[:, :, 30:]) * 9
    v2[:, :, 30:] = torch.randn_like(v2[:, :, 30:]) * 9
    torch.testing.assert_close(long_short_attention(q, k2, v2, kg, vg, 8, kpm, causal), base, atol=1e-12, rtol=0)
    if not causal:
        # Real outputs equal those of the unpadded sequence of 30 (global keys are the caller's).
        short = long_short_attention(q[:, :, :30], k[:, :, :30], v[:, :, :30], kg, vg, 8)
        torch.testing.assert_close(base[:, :, :30], short, atol=1e-12, rtol=0)


def test_causal_never_sees_the_future():
    L, w = 40, 8
    q, k, v, kg, vg, _ = make(L, w, True, padded=False)
    base = long_short_attention(q, k, v, kg, vg, w, None, True)
    t = 21  # in segment 2; global group 2 summarises segment 2, so it must stay invisible up to position 23
    k2, v2, kg2, vg2 = k.clone(), v.clone(), kg.clone(), vg.clone()
    k2[:, :, t + 1 :] += 3.0
    v2[:, :, t + 1 :] -= 2.0
    per = kg.shape[2] // (L // w)
    kg2[:, :, (t // w) * per :] += 5.0
    vg2[:, :, (t // w) * per :] -= 5.0
    got = long_short_attention(q, k2, v2, kg2, vg2, w, None, True)
    torch.testing.assert_close(got[:, :, : t + 1], base[:, :, : t + 1], atol=1e-12, rtol=0)
    assert (got[:, :, t + 1 :] - base[:, :, t + 1 :]).abs().max() > 1e-3  # the change is visible later


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(causal):
    q, k, v, kg, vg, kpm = make(10, 4, causal, r_seg=2, B=1, H=1, d=2)  # the row is padded
    inputs = tuple(t.requires_grad_(True) for t in (q, k, v, kg, vg))
    assert torch.autograd.gradcheck(lambda *a: long_short_attention(*a, 4, kpm, causal), inputs)
    # The reference in fast mode (a random projection of the Jacobian): the same check, fewer evaluations.
    assert torch.autograd.gradcheck(lambda *a: long_short_attention_ref(*a, 4, kpm, causal), inputs, fast_mode=True)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("L,window", [(3, 2), (129, 32)])
@pytest.mark.filterwarnings("ignore:.*flex_attention.*")
def test_flex_path_matches_reference(L, window, causal):
    # The fused path's mask logic, run uncompiled on CPU (the compiled kernel runs only on CUDA). FlexAttention
    # has no CPU backward, so the backward parity of this path can only be checked on a GPU.
    args = make(L, window, causal, H=1, d=4)
    got = flex_long_short_attention(*args[:5], window, args[5], causal, compiled=False)
    want = long_short_attention_ref(*args[:5], window, args[5], causal)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


def test_float32_error_within_budget():
    # Blocked fp32 error against fp64 stays within 2x that of the dense fp32 reference (plus an epsilon).
    args = make(300, 32, False)
    want = long_short_attention_ref(*args[:5], 32, args[5])
    f32 = [t.float() for t in args[:5]]
    err_blocked = (long_short_attention(*f32, 32, args[5]).double() - want).abs().max()
    err_dense = (long_short_attention_ref(*f32, 32, args[5]).double() - want).abs().max()
    assert err_blocked <= 2 * err_dense + 1e-6


def test_bad_arguments():
    q, k, v, kg, vg, kpm = make(12, 4, False)
    with pytest.raises(ValueError, match="window"):
        long_short_attention(q, k, v, kg, vg, 0)
    with pytest.raises(ValueError, match="k_global"):
        long_short_attention(q, k, v, kg[..., :2], vg, 4)
    with pytest.raises(TypeError, match="dtype"):
        long_short_attention(q, k, v, kg.float(), vg.float(), 4)
    with pytest.raises(ValueError, match="multiple of the number of segments"):
        long_short_attention(q, k, v, kg[:, :, :2], vg[:, :, :2], 4, causal=True)  # 3 segments, r = 2
    with pytest.raises(TypeError, match="bool"):
        long_short_attention(q, k, v, kg, vg, 4, kpm.long())

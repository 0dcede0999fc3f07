"""`local_attention` against a dense masked float64 reference written here independently of the library."""

from __future__ import annotations

import math

import pytest
import torch

from multiseq.functional import local_attention, local_attention_ref, sdpa_attention


def dense_reference(q, k, v, window, causal, kpm):
    B, H, L, d = q.shape
    out = torch.zeros_like(q)
    for i in range(L):
        keys = [j for j in range(L) if ((i - window < j <= i) if causal else abs(i - j) <= window // 2)]
        for b in range(B):
            ks = [j for j in keys if kpm is None or kpm[b, j]]
            if not ks:
                continue
            s = (q[b, :, i : i + 1] @ k[b, :, ks].transpose(-1, -2)) / math.sqrt(d)  # (H, 1, n)
            out[b, :, i] = (s.softmax(-1) @ v[b, :, ks])[:, 0]
    return out


def _inputs(L, B=2, H=2, d=8, dtype=torch.float64, padded=True):
    g = torch.Generator().manual_seed(L)
    q, k, v = (torch.randn(B, H, L, d, generator=g, dtype=dtype) for _ in range(3))
    kpm = None
    if padded:
        kpm = torch.ones(B, L, dtype=torch.bool)
        kpm[-1, max(1, L - L // 3) :] = False
    return q, k, v, kpm


@pytest.mark.parametrize("L", [1, 3, 127, 129])
@pytest.mark.parametrize("window", [1, 2, 7, 64])
@pytest.mark.parametrize("causal", [False, True])
def test_local_matches_dense(L, window, causal):
    q, k, v, kpm = _inputs(L)
    want = dense_reference(q, k, v, window, causal, kpm) if L < 128 else local_attention_ref(q, k, v, window, causal, kpm)
    got = local_attention(q, k, v, window, causal=causal, key_padding_mask=kpm)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


def test_ref_matches_loop_reference():
    q, k, v, kpm = _inputs(129)
    for causal in (False, True):
        torch.testing.assert_close(
            local_attention_ref(q, k, v, 33, causal, kpm), dense_reference(q, k, v, 33, causal, kpm), atol=1e-10, rtol=1e-9
        )


@pytest.mark.parametrize("causal", [False, True])
def test_local_long_length(causal):
    q, k, v, kpm = _inputs(1000, B=1, H=1, d=4)
    got = local_attention(q, k, v, 100, causal=causal, key_padding_mask=kpm)
    torch.testing.assert_close(got, local_attention_ref(q, k, v, 100, causal, kpm), atol=1e-10, rtol=1e-9)


def test_window_covering_everything_is_full_attention():
    q, k, v, kpm = _inputs(50)
    full = sdpa_attention(q, k, v, key_padding_mask=kpm)
    torch.testing.assert_close(local_attention(q, k, v, 200, key_padding_mask=kpm), full, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(
        local_attention(q, k, v, 200, causal=True, key_padding_mask=kpm),
        sdpa_attention(q, k, v, causal=True, key_padding_mask=kpm),
        atol=1e-10,
        rtol=1e-9,
    )


def test_fully_masked_rows_are_zero_not_nan():
    q, k, v, _ = _inputs(20)
    kpm = torch.zeros(2, 20, dtype=torch.bool)
    kpm[0, :5] = True
    out = local_attention(q, k, v, 4, key_padding_mask=kpm)
    assert torch.isfinite(out).all()
    assert out[1].abs().max() == 0
    assert out[0, :, 10:].abs().max() == 0  # no real key within reach
    assert torch.isfinite(sdpa_attention(q, k, v, key_padding_mask=kpm)).all()
    assert torch.isfinite(sdpa_attention(q, k, v, causal=True, key_padding_mask=kpm.flip(1))).all()


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(causal):
    q, k, v, kpm = _inputs(13, B=2, H=1, d=3)
    for t in (q, k, v):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c: local_attention(a, b, c, 5, causal, kpm), (q, k, v))
    assert torch.autograd.gradcheck(lambda a, b, c: local_attention_ref(a, b, c, 5, causal, kpm), (q, k, v))


def test_causal_never_sees_future():
    q, k, v, _ = _inputs(40, padded=False)
    base = local_attention(q, k, v, 9, causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 30:] += 3.0
    v2[:, :, 30:] -= 2.0
    torch.testing.assert_close(local_attention(q, k2, v2, 9, causal=True)[:, :, :30], base[:, :, :30])


def test_bad_arguments():
    q, k, v, kpm = _inputs(8)
    with pytest.raises(ValueError, match="window"):
        local_attention(q, k, v, 0)
    with pytest.raises(TypeError, match="bool"):
        local_attention(q, k, v, 3, key_padding_mask=kpm.long())
    with pytest.raises(ValueError, match="shape"):
        local_attention(q, k[:, :, :4], v, 3)
    with pytest.raises(TypeError, match="floating"):
        local_attention(q.long(), k.long(), v.long(), 3)

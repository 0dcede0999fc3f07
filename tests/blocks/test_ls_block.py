"""The `ls` block against a per-query float64 re-statement of the Transformer-LS equations (dynamic projection,
DualLN, one softmax over global + segment-window keys, CLS token, depthwise conv on V), using the block's own
parameters; plus causality, padding and argument checks at the block level."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from multiseq.blocks import build_block


def paper_ls(blk, x, mask):
    """Transformer-LS self-attention written query by query (no blocking, no masks as tensors)."""
    B, L, D = x.shape
    H, w, r = blk.heads, blk.window, blk.rank
    d = D // H
    causal, cls = blk.causal, blk.cls
    # The block computes W_q, W_k, W_v and W_P in one GEMM; split its weight into the paper's four matrices.
    w_q, w_k, w_v, w_p = blk.qkv.weight.split([D, D, D, H * r])
    b_q, b_k, b_v, b_p = blk.qkv.bias.split([D, D, D, H * r])
    q, k, v = F.linear(x, w_q, b_q), F.linear(x, w_k, b_k), F.linear(x, w_v, b_v)
    ln_l = lambda t: F.layer_norm(t, (D,), blk.ln_local.weight, blk.ln_local.bias, blk.ln_local.eps)  # noqa: E731
    ln_g = lambda t: F.layer_norm(t, (D,), blk.ln_global.weight, blk.ln_global.bias, blk.ln_global.eps)  # noqa: E731
    kl, vl = ln_l(k), ln_l(v)
    scores = F.linear(x, w_p, b_p).reshape(B, L, H, r)
    o = 1 if cls else 0
    n = L - o  # sequence length seen by the window
    y = torch.zeros(B, L, H, d, dtype=x.dtype)
    for b in range(B):
        real = [i for i in range(o, L) if mask[b, i]]

        def project(positions):
            # P = softmax over the given real positions of W_P x, per head; k_bar = P^T k -> (r, D) before LN_G.
            kb = torch.zeros(r, D, dtype=x.dtype)
            vb = torch.zeros(r, D, dtype=x.dtype)
            if positions:
                for h in range(H):
                    p = scores[b, positions, h].softmax(0)  # (n_pos, r)
                    kb[:, h * d : (h + 1) * d] = p.T @ k[b, positions, h * d : (h + 1) * d]
                    vb[:, h * d : (h + 1) * d] = p.T @ v[b, positions, h * d : (h + 1) * d]
            return kb, vb

        if causal:
            segs = [project([i for i in real if s * w <= i < (s + 1) * w]) for s in range(-(-n // w))]
        else:
            kb, vb = project(real)
            if cls:
                kb, vb = torch.cat([k[b, :1], kb]), torch.cat([v[b, :1], vb])
            glob_k, glob_v = ln_g(kb), ln_g(vb)
        for i in range(L):
            if cls and i == 0:
                gk, gv, loc = glob_k, glob_v, real
            else:
                s = (i - o) // w
                if causal:
                    past = segs[:s]
                    gk = ln_g(torch.cat([p[0] for p in past])) if past else torch.zeros(0, D, dtype=x.dtype)
                    gv = ln_g(torch.cat([p[1] for p in past])) if past else torch.zeros(0, D, dtype=x.dtype)
                else:
                    gk, gv = glob_k, glob_v
                lo, hi = s * w - w // 2 + o, (s + 1) * w + w // 2 + o
                loc = [j for j in real if lo <= j < hi and (not causal or j <= i)]
            for h in range(H):
                sl = slice(h * d, (h + 1) * d)
                keys = torch.cat([gk[:, sl], kl[b, loc, sl]])
                vals = torch.cat([gv[:, sl], vl[b, loc, sl]])
                a = (keys @ q[b, i, sl] / math.sqrt(d)).softmax(0)
                y[b, i, h] = a @ vals
        if blk.conv is not None:
            kern = blk.conv.shape[1]
            left = kern - 1 if causal else (kern - 1) // 2
            vm = v[b].reshape(L, H, d) * mask[b, :, None, None]
            for i in range(L):
                for t in range(kern):
                    j = i - left + t
                    if 0 <= j < L:
                        y[b, i] += blk.conv[:, t, None] * vm[j]
    return F.linear(y.reshape(B, L, D), blk.out.weight, blk.out.bias)


def _block(causal=False, cls=False, conv=0, window=4, rank=3, dim=8, heads=2):
    torch.manual_seed(1)
    blk = build_block("ls", dim, heads=heads, window=window, rank=rank, causal=causal, cls=cls, conv_kernel=conv)
    blk = blk.double().eval()
    if conv:
        with torch.no_grad():
            blk.conv.normal_()  # zero-init would make the conv branch invisible to the test
    for ln in (blk.ln_local, blk.ln_global):  # non-trivial affine parameters
        with torch.no_grad():
            ln.weight.normal_()
            ln.bias.normal_()
    return blk


def _x(L, B=2, dim=8, pad_from=None):
    g = torch.Generator().manual_seed(L)
    x = torch.randn(B, L, dim, generator=g, dtype=torch.float64)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[-1, pad_from if pad_from is not None else max(1, L - L // 3) :] = False
    return x * mask[..., None], mask


@pytest.mark.parametrize(
    "causal,cls,conv,L",
    [(False, False, 0, 1), (False, False, 0, 11), (False, False, 3, 13), (False, True, 0, 12), (False, True, 4, 9),
     (True, False, 0, 1), (True, False, 0, 14), (True, False, 3, 9)],
)
def test_block_matches_paper_equations(causal, cls, conv, L):
    blk = _block(causal=causal, cls=cls, conv=conv)
    x, mask = _x(L)
    with torch.no_grad():
        got = blk(x, mask)
        want = paper_ls(blk, x, mask)
    torch.testing.assert_close(got[mask], want[mask], atol=1e-10, rtol=1e-9)


def test_causal_block_never_sees_the_future():
    blk = _block(causal=True, conv=3)
    x, mask = _x(24, B=1)
    mask[:] = True
    base = blk(x, mask)
    for t in (0, 5, 7, 8, 15):
        x2 = x.clone()
        x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :]) * 4
        out = blk(x2, mask)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls,conv", [(False, 0), (True, 3)])
def test_block_padding_invariance(cls, conv):
    blk = _block(cls=cls, conv=conv)
    x, mask = _x(15, B=1, pad_from=9)
    x2 = x.clone()
    x2[:, 9:] = torch.randn_like(x2[:, 9:]) * 7  # garbage under the padding
    with torch.no_grad():
        a, b = blk(x, mask), blk(x2, mask)
        short = blk(x[:, :9], mask[:, :9])
    torch.testing.assert_close(a[:, :9], b[:, :9], atol=1e-12, rtol=0)
    torch.testing.assert_close(a[:, :9], short, atol=1e-12, rtol=0)


def test_block_gradients_reach_every_parameter():
    blk = _block(conv=3, cls=True).float().train()
    x, mask = _x(20)
    blk(x.float(), mask).square().sum().backward()
    for name, p in blk.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_bad_options():
    with pytest.raises(ValueError, match="rank"):
        build_block("ls", 8, heads=2, rank=0)
    with pytest.raises(ValueError, match="window"):
        build_block("ls", 8, heads=2, window=0)
    with pytest.raises(ValueError, match="cls"):
        build_block("ls", 8, heads=2, causal=True, cls=True)
    with pytest.raises(ValueError, match="divisible"):
        build_block("ls", 10, heads=4)
    with pytest.raises(ValueError, match="conv_kernel"):
        build_block("ls", 8, heads=2, conv_kernel=-1)

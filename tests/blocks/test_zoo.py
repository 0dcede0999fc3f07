"""The LRA zoo blocks against dense references written here, approximation error that shrinks with features or
rank, causal leak tests, and the carried Luna state."""

from __future__ import annotations

import math

import pytest
import torch

import multiseq
from multiseq.blocks import build_block
from multiseq.blocks.linear_attention import (
    feature_attention,
    feature_attention_ref,
    orthogonal_gaussian,
    positive_random_features,
)
from multiseq.blocks.projected_attention import Linformer
from multiseq.blocks.sparse_attention import random_block_choice, strided_attention, window_global_attention
from multiseq.errors import ConfigError


def dense(q, k, v, allowed):
    """Masked softmax attention; rows with no allowed key are zero. allowed broadcasts to (B, H, L, L)."""
    s = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1])
    allowed = allowed.expand(s.shape)
    any_key = allowed.any(-1, keepdim=True)
    p = torch.softmax(s.masked_fill(~allowed, float("-inf")).masked_fill(~any_key, 0), -1) * any_key
    return p @ v


def _qkv(L=37, B=2, H=2, d=4):
    g = torch.Generator().manual_seed(L)
    q, k, v = (torch.randn(B, H, L, d, generator=g, dtype=torch.float64) for _ in range(3))
    kpm = torch.ones(B, L, dtype=torch.bool)
    kpm[-1, (2 * L) // 3 :] = False
    return q, k, v, kpm


IJ = lambda L: (torch.arange(L)[:, None], torch.arange(L)[None])  # noqa: E731


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("L", [1, 3, 37, 130])
def test_feature_attention_matches_dense(causal, L):
    g = torch.Generator().manual_seed(0)
    qf, kf = (torch.rand(2, 2, L, 6, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 2, L, 3, generator=g, dtype=torch.float64)
    kpm = torch.ones(2, L, dtype=torch.bool)
    kpm[1, L // 2 + 1 :] = False
    torch.testing.assert_close(
        feature_attention(qf, kf, v, causal, kpm, chunk=16), feature_attention_ref(qf, kf, v, causal, kpm)
    )


def test_performer_features_approximate_softmax_better_with_more_features():
    q, k, v, _ = _qkv(L=64, B=1, H=1, d=8)
    q, k = q * 0.5, k * 0.5
    exact = dense(q, k, v, torch.ones(1, 1, 64, 64, dtype=torch.bool))
    errors = []
    for m in (8, 64, 1024):
        errs = []
        for seed in range(4):
            W = orthogonal_gaussian(m, 8, torch.Generator().manual_seed(seed)).double()
            s = 8**-0.25
            qf, kf = positive_random_features(q * s, W, True), positive_random_features(k * s, W, False)
            errs.append((feature_attention(qf, kf, v) - exact).abs().mean().item())
        errors.append(sum(errs) / len(errs))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.25 * errors[0]


def test_linformer_pool_projection_is_exact_at_full_rank_and_improves_with_rank():
    torch.manual_seed(0)
    L = 32
    q, k, v, _ = _qkv(L=L, B=1, H=1, d=4)
    exact = dense(q, k, v, torch.ones(1, 1, L, L, dtype=torch.bool))
    errs = []
    for rank in (4, 16, 32):
        P = Linformer.pool_matrix(rank, L).double()
        kp, vp = torch.einsum("rl,bhld->bhrd", P, k), torch.einsum("rl,bhld->bhrd", P, v)
        errs.append((torch.nn.functional.scaled_dot_product_attention(q, kp, vp) - exact).abs().max().item())
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-12


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("G", [0, 1, 3])
def test_longformer_matches_dense(causal, G):
    L, w = 37, 9
    q, k, v, kpm = _qkv(L)
    i, j = IJ(L)
    band = ((j <= i) & (j > i - w)) if causal else (i - j).abs() <= w // 2
    allowed = band | (j < G) | (i < G)
    if causal:
        allowed = allowed & (j <= i)
    want = dense(q, k, v, allowed[None, None] & kpm[:, None, None, :])
    torch.testing.assert_close(window_global_attention(q, k, v, w, G, causal, kpm), want)


@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_matches_dense(causal):
    L, c, r = 37, 4, 2
    q, k, v, kpm = _qkv(L)
    i, j = IJ(L)
    nb = -(-L // c)
    choice = random_block_choice(nb, r, 0)
    rand = torch.zeros(L, L, dtype=torch.bool)
    for qi in range(L):
        for b in choice[qi // c]:
            rand[qi, b * c : (b + 1) * c] = True
    win = 2 * c if causal else 2 * c + 1
    band = ((j <= i) & (j > i - win)) if causal else (i - j).abs() <= win // 2
    allowed = band | (j < c) | (i < c) | rand
    if causal:
        allowed = allowed & (j <= i)
    want = dense(q, k, v, allowed[None, None] & kpm[:, None, None, :])
    got = window_global_attention(q, k, v, win, c, causal, kpm, block=c, random_blocks=r, seed=0)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pattern", ["strided", "fixed"])
def test_sparse_patterns_match_dense(causal, pattern):
    L, s = 37, 5
    q, k, v, kpm = _qkv(L)
    i, j = IJ(L)
    row = i // s == j // s
    second = ((i - j) % s == 0) if pattern == "strided" else (j % s >= s - 2).expand(L, L)
    if causal:
        row, second = row & (j <= i), second & (j <= i)
    got_row, got_second = strided_attention(q, k, v, s, pattern, causal, kpm, summary=2)
    torch.testing.assert_close(got_row, dense(q, k, v, row[None, None] & kpm[:, None, None, :]))
    torch.testing.assert_close(got_second, dense(q, k, v, second[None, None] & kpm[:, None, None, :]))


def test_gradcheck_zoo_references():
    q, k, v, kpm = _qkv(L=11, B=2, H=1, d=3)
    for t in (q, k, v):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c: window_global_attention(a, b, c, 5, 2, False, kpm), (q, k, v))
    assert torch.autograd.gradcheck(
        lambda a, b, c: strided_attention(a, b, c, 3, "strided", True, kpm)[1], (q, k, v)
    )
    qf, kf = torch.rand(1, 1, 9, 3, dtype=torch.float64, requires_grad=True), torch.rand(1, 1, 9, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: feature_attention(a, kf, b, True, None, 4), (qf, v[:1, :, :9].detach().requires_grad_()))


CAUSAL_BLOCKS = {
    "linear": {"heads": 2},
    "performer": {"heads": 2, "features": 16},
    "kernelized": {"heads": 2, "features": 16},
    "sparse": {"heads": 2, "stride": 4},
    "longformer": {"heads": 2, "window": 6},
    "bigbird": {"heads": 2, "block": 4},
    "reformer": {"heads": 2, "buckets": 4, "chunk": 8},
    "synthesizer": {"heads": 2, "max_length": 64},
    "perceiver": {"heads": 2, "latents": 8},
    "block_recurrent": {"heads": 2, "block": 8, "state_size": 4},
    "hierarchical": {"heads": 2, "chunk": 8},
}


@pytest.mark.parametrize("name", sorted(CAUSAL_BLOCKS))
def test_causal_blocks_never_see_the_future(name):
    torch.manual_seed(0)
    block = build_block(name, 16, causal=True, **CAUSAL_BLOCKS[name]).double().eval()
    x = torch.randn(2, 40, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 25:] += torch.randn(2, 15, 16, dtype=torch.float64) * 3
    with torch.no_grad():
        a, b = block(x), block(x2)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a[:, :25], b[:, :25])


@pytest.mark.parametrize("name", ["linformer", "luna", "sinkhorn"])
def test_bidirectional_only_blocks_refuse_causal(name):
    with pytest.raises(ConfigError, match="causal|bidirectional"):
        build_block(name, 16, causal=True, heads=2)


def test_luna_carries_packed_sequence_between_layers():
    model = multiseq.create_model("luna_bytes_tiny")
    lunas = [layer.block for layer in model.backbone.layers]
    assert lunas[0].p0 is not None and all(b.p0 is None for b in lunas[1:])
    x, m = model.encode(["one review", "two"])
    seen = {}
    hook = lunas[1].pack.register_forward_hook(lambda mod, args, out: seen.setdefault("p", args[0]))
    model(x, m)
    hook.remove()
    # The second layer packs from the first layer's output state, not from a learned initial sequence.
    assert seen["p"].shape[0] == 2 and not torch.equal(seen["p"][0], seen["p"][1])


def test_performer_redraws_on_schedule_and_deterministically():
    a = build_block("performer", 16, heads=2, features=8, redraw_interval=2)
    b = build_block("performer", 16, heads=2, features=8, redraw_interval=2)
    first = a.proj.clone()
    torch.testing.assert_close(first, b.proj)
    x = torch.randn(1, 10, 16)
    a.train()
    a(x).sum().backward()
    torch.testing.assert_close(a.proj, first)
    a(x).sum().backward()
    assert not torch.equal(a.proj, first) and int(a.draws) == 2


def test_wide_and_deep_presets():
    wide, deep = multiseq.get_model_config("attention_bytes_wide"), multiseq.get_model_config("attention_bytes_deep")
    assert wide.depth == 1 and deep.depth > 1 and wide.width > deep.width


@pytest.mark.parametrize("causal", [False, True])
def test_reformer_one_round_matches_dense_bucket_chunks(causal):
    from multiseq.blocks.reformer import lsh_attention, lsh_buckets

    L, c, nb = 41, 4, 4
    q, _, v, kpm = _qkv(L, H=1)
    k = torch.nn.functional.normalize(q, dim=-1)
    bkt = lsh_buckets(k, nb, 1, seed=3)[0]  # (B, H, L)
    want = torch.zeros_like(v)
    for b in range(2):
        real = [j for j in range(L) if kpm[b, j]]
        rank = {}  # position -> (bucket, rank in the chunked order: within its bucket if causal, else overall)
        done = 0
        for bucket in range(nb):
            members = [j for j in real if bkt[b, 0, j] == bucket]
            rank.update({j: (bucket, r if causal else done + r) for r, j in enumerate(members)})
            done += len(members)
        allowed = torch.zeros(L, L, dtype=torch.bool)
        for i in real:
            bi, ri = rank[i]
            for j in real:
                bj, rj = rank[j]
                if bj == bi and rj // c in (ri // c, ri // c - 1) and (not causal or j <= i):
                    allowed[i, j] = True
            if allowed[i].sum() > 1:
                allowed[i, i] = False
        s = (q[b, 0] @ k[b, 0].T) / math.sqrt(q.shape[-1])
        p = torch.softmax(s.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
        want[b, 0] = p @ v[b, 0]
    got = lsh_attention(q, v, kpm, nb, 1, c, 3, causal)
    torch.testing.assert_close(got * kpm[:, None, :, None], want * kpm[:, None, :, None])


def test_reformer_auto_buckets_follow_length_and_match_explicit_count():
    from multiseq.blocks.reformer import auto_buckets

    assert auto_buckets(40, 64) == 2 and auto_buckets(400, 64) == 6 and auto_buckets(16384, 64) == 256
    torch.manual_seed(0)
    auto = build_block("reformer", 16, heads=2, chunk=8).eval()
    fixed = build_block("reformer", 16, heads=2, chunk=8, buckets=auto_buckets(100, 8))
    fixed.load_state_dict(auto.state_dict())
    x = torch.randn(2, 100, 16)
    with torch.no_grad():
        torch.testing.assert_close(auto(x), fixed.eval()(x))


@pytest.mark.parametrize("options", [{"buckets": 3}, {"buckets": "many"}, {"chunk": 0}])
def test_reformer_rejects_bad_bucket_and_chunk_options(options):
    with pytest.raises(ConfigError, match="buckets|chunk"):
        build_block("reformer", 16, heads=2, **options)

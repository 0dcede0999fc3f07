"""The downsampling stem, mean+max pooling and the timm-style model surface (features / head / reset)."""

import pytest
import torch

import multiseq
from multiseq.checkpoint import load_model, save_model
from multiseq.config import StemConfig
from multiseq.errors import ConfigError
from multiseq.heads import masked_pool
from multiseq.stem import ConvStem, downsample_mask


def _stemmed(block="s4d", stride=4, kernel=8, causal=False, pool="meanmax"):
    cfg = multiseq.get_model_config(
        f"{block}_bytes_tiny", stem={"stride": stride, "kernel": kernel, "width": 16}, head={"pool": pool},
        causal=causal, width=32, depth=1,
    )
    torch.manual_seed(0)
    return multiseq.create_model(cfg).eval()


@pytest.mark.parametrize("L", [1, 3, 8, 13])
def test_downsample_mask_is_any_over_windows(L):
    mask = torch.rand(2, L) > 0.5
    got = downsample_mask(mask, 4)
    want = torch.stack([torch.tensor([bool(row[j:j + 4].any()) for j in range(0, L, 4)]) for row in mask])
    assert torch.equal(got, want)


@pytest.mark.parametrize("L", [1, 5, 16, 31])
@pytest.mark.parametrize("causal", [False, True])
def test_stem_output_length_and_padding_invariance(L, causal):
    torch.manual_seed(0)
    stem = ConvStem(StemConfig(stride=4, kernel=8), 6, 10, causal=causal)
    x = torch.randn(1, L, 6)
    mask = torch.ones(1, L, dtype=torch.bool)
    out, m = stem(x, mask)
    assert out.shape == (1, -(-L // 4), 10) and m.all()
    # The same sequence padded with garbage: real windows unchanged, padded windows zero.
    xp = torch.cat([x, torch.randn(1, 9, 6) * 100], 1)
    mp = torch.cat([mask, torch.zeros(1, 9, dtype=torch.bool)], 1)
    outp, mp2 = stem(xp, mp)
    n = out.shape[1]
    assert torch.allclose(outp[:, :n], out, atol=1e-6)
    assert not mp2[:, n:].any() and (outp[:, n:] == 0).all()


def test_causal_stem_never_reads_a_later_window():
    torch.manual_seed(0)
    stem = ConvStem(StemConfig(stride=4, kernel=12), 3, 5, causal=True)
    x = torch.randn(1, 32, 3)
    mask = torch.ones(1, 32, dtype=torch.bool)
    base, _ = stem(x, mask)
    x2 = x.clone()
    x2[:, 16:] = torch.randn(1, 16, 3)  # change windows 4..7
    changed, _ = stem(x2, mask)
    assert torch.allclose(base[:, :4], changed[:, :4])
    assert not torch.allclose(base[:, 4:], changed[:, 4:])


@pytest.mark.parametrize("block", ["s4d", "attention", "mega_chunk"])
def test_stemmed_model_is_padding_invariant(block):
    model = _stemmed(block)
    texts = ["a fine film, truly", "bad"]
    x, m = model.encode(texts)
    both = model(x, m)
    for i, t in enumerate(texts):
        alone = model(*model.encode([t]))
        assert torch.allclose(both[i], alone[0], atol=1e-5)


def test_meanmax_pool_is_mean_then_max():
    x = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    got = masked_pool(x, mask, "meanmax")
    want = torch.cat([torch.stack([x[0, :2].mean(0), x[1].mean(0)]), torch.stack([x[0, :2].amax(0), x[1].amax(0)])], -1)
    assert torch.allclose(got, want, atol=1e-6)
    empty = masked_pool(x, torch.zeros(2, 5, dtype=torch.bool), "meanmax")
    assert empty.shape == (2, 6) and (empty == 0).all()


def test_stem_config_validation():
    with pytest.raises(ConfigError, match="kernel - stride even"):
        multiseq.get_model_config("s4d_bytes_tiny", stem={"stride": 4, "kernel": 7})
    with pytest.raises(ConfigError, match="stride must be an int >= 1"):
        multiseq.get_model_config("s4d_bytes_tiny", stem={"stride": 0})
    with pytest.raises(ConfigError, match="pool='cls'"):
        multiseq.get_model_config("s4d_bytes_tiny", stem={"stride": 2}, head={"pool": "cls"})
    with pytest.raises(ConfigError, match="unknown key 'strid'"):
        multiseq.ModelConfig.from_dict({"stem": {"strid": 2}})


def test_features_head_and_reset_classifier(tmp_path):
    model = _stemmed()
    x, m = model.encode(["some text to read", "more"])
    h, hm = model.forward_features(x, m)
    assert h.shape[-1] == model.num_features and hm.shape == h.shape[:2]
    assert torch.equal(model.forward_head(h, hm), model(x, m))
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    model.reset_classifier(5)
    assert model(x, m).shape == (2, 5) and model.num_classes == 5 == model.config.num_classes
    after = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    assert body.keys() == after.keys() and all(torch.equal(body[k], after[k]) for k in body)
    save_model(model, tmp_path / "m.safetensors")
    same = load_model(tmp_path / "m.safetensors").eval()
    assert same.config == model.config and torch.equal(same(x, m), model(x, m))


def test_layer_scale_starts_each_layer_near_the_identity():
    base = dict(width=32, depth=2, stem={"stride": 4, "width": 32}, head={"pool": "meanmax"})
    torch.manual_seed(0)
    scaled = multiseq.create_model("s4d_bytes_tiny", layer_scale=1e-6, **base).eval()
    x, m = scaled.encode(["layer scale keeps the stem's features"])
    # With gains of 1e-6 the blocks add (almost) nothing: the backbone output is the final norm of the stem output.
    stem_out, sm = scaled.stem(*scaled.embed(x, m))
    want = scaled.backbone.final_norm(stem_out) * sm[..., None]
    got, _ = scaled.features(x, m)
    assert torch.allclose(got, want, atol=1e-4)
    gains = [n for n, _ in scaled.named_parameters() if n.endswith((".gamma", ".ffn_gamma")) and ".block." not in n]
    assert len(gains) == 4  # block and feed-forward branch of both layers
    with pytest.raises(ConfigError, match="layer_scale"):
        multiseq.get_model_config("s4d_bytes_tiny", layer_scale=-1.0)
    # Mega manages its own residual: no gains there.
    mega = multiseq.create_model("mega_bytes_tiny", layer_scale=0.1, width=32, depth=1)
    assert all(layer.gamma is None and layer.ffn_gamma is None for layer in mega.backbone.layers)

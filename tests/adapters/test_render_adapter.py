"""The `render` adapter and the `*_render_*` presets: shapes, patch order, views, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import multiseq
from multiseq.adapters import build_adapter
from multiseq.config import AdapterConfig
from multiseq.embed import Embedding
from multiseq.errors import ConfigError, InputError
from renderers import TextRenderer

P = 16


@pytest.fixture(scope="module")
def adapter():
    return build_adapter(AdapterConfig("render", max_length=529))


def test_sequence_view_is_the_strip_cut_into_patches(adapter):
    texts = ["short", "a somewhat longer text than the first one"]
    x, mask = adapter(texts)
    renders = [TextRenderer.from_config("pixel").render(t) for t in texts]
    L = max(r.num_text_patches + 1 for r in renders)
    assert x.shape == (2, L, 256) and x.dtype == torch.float32 and mask.shape == (2, L)
    for b, r in enumerate(renders):
        np.testing.assert_array_equal(mask[b].numpy(), r.mask[:L])
        for i in (0, 1, r.num_text_patches, L - 1):
            patch = r.pixels[:, i * P : (i + 1) * P].astype(np.float32).reshape(-1) / 255.0
            np.testing.assert_allclose(x[b, i].numpy(), (patch - 0.5) / 0.5, atol=1e-6)
    full, fmask = build_adapter(AdapterConfig("render", max_length=529, options={"pad_to": "max_length"}))(texts)
    assert full.shape == (2, 529, 256) and fmask.sum() == mask.sum()
    torch.testing.assert_close(full[:, :L], x)


def test_square_view_patch_embedding_equals_the_sequence_view():
    seq = build_adapter(AdapterConfig("render", max_length=529))
    sq = build_adapter(AdapterConfig("render", max_length=529, options={"view": "square"}))
    texts = ["ViT patches in order", "שלום"]
    xs, ms = seq(texts)
    xq, mq = sq(texts)
    assert xq.shape == (2, 1, 368, 368) and mq.shape == (2, 529)
    torch.testing.assert_close(mq[:, : ms.shape[1]], ms)
    # timm's PatchEmbed on the square image == a linear map of the strip's flattened patches, same weights.
    D = 8
    patch = Embedding(sq.embed_spec(), D, positional="none", max_length=529)
    linear = Embedding(seq.embed_spec(), D, positional="none", max_length=529)
    with torch.no_grad():
        linear.proj.weight.copy_(patch.proj.proj.weight.reshape(D, -1))
        linear.proj.bias.copy_(patch.proj.proj.bias)
        hq, _ = patch(xq, mq)
        hs, _ = linear(xs, ms)
    L = ms.shape[1]
    torch.testing.assert_close(hq[:, :L], hs, atol=1e-4, rtol=1e-4)


def test_pairs_words_and_prerendered_inputs(adapter):
    pair = ("first", "second")
    x, m = adapter([pair, ["two", "words"]])
    assert x.shape[0] == 2
    r = adapter.renderer.render(pair)
    x1, m1 = adapter(r)  # a RenderResult is accepted as is
    x2, m2 = adapter(pair)  # a single pair is one item
    torch.testing.assert_close(x1, x2)
    assert int(m2.sum()) == r.num_text_patches + 1
    other = TextRenderer.from_config("pixel", max_seq_length=16).render("x")
    with pytest.raises(InputError, match="pre-rendered"):
        adapter([other])


def test_word_rendering_option_and_presets(adapter):
    words = build_adapter(AdapterConfig("render", max_length=529, options={"rendering": "words"}))
    text = "  the same  word, the same patches "
    x, m = words([text, ("a", "pair")])
    want, wm = adapter([text.split(), ("a", "pair")])  # strings split on whitespace; pairs drawn as given
    torch.testing.assert_close(x, want)
    assert torch.equal(m, wm)
    with pytest.raises(ConfigError, match="rendering must be one of"):
        build_adapter(AdapterConfig("render", max_length=529, options={"rendering": "glyphs"}))
    config = multiseq.get_model_config("s4d_render_tiny")
    assert config.adapter.options["rendering"] == "words" and config.head.pool == "max"


def test_rgb_features():
    a = build_adapter(AdapterConfig("render", max_length=529, options={"config": "pixel_rgb"}))
    x, m = a(["color"])
    assert a.embed_spec().in_features == 768 and x.shape[-1] == 768


def test_bad_inputs_and_configs(adapter):
    for bad in (b"bytes", 3, [], [None]):
        with pytest.raises(InputError):
            adapter(bad)
    with pytest.raises(InputError, match="position 1"):
        adapter(["a\udc80"])
    with pytest.raises(ConfigError, match="square number"):
        build_adapter(AdapterConfig("render", max_length=500, options={"view": "square"}))
    with pytest.raises(ConfigError, match="Did you mean 'pixel'"):
        build_adapter(AdapterConfig("render", max_length=529, options={"config": "pixle"}))
    with pytest.raises(ConfigError, match="view"):
        build_adapter(AdapterConfig("render", max_length=529, options={"view": "grid"}))
    short = build_adapter(AdapterConfig("render", max_length=64))
    assert short.render_config.max_seq_length == 64 and short(["x" * 2000])[0].shape[1] == 64


def test_render_presets_cover_the_single_block_families():
    names = multiseq.list_models("*_render_*")
    for family in [n[: -len("_bytes_small")] for n in multiseq.list_models("*_bytes_small")]:
        if len(multiseq.get_model_config(f"{family}_bytes_small").blocks) == 1:
            assert f"{family}_render_small" in names
    cfg = multiseq.get_model_config("local_render_small")
    assert cfg.adapter.kind == "render" and cfg.adapter.max_length == 529
    assert cfg.blocks == multiseq.get_model_config("local_bytes_small").blocks


def test_model_predicts_from_text_and_renders_in_dataloader_workers():
    model = multiseq.create_model("local_render_tiny", num_classes=3)
    probs = model.predict_proba(["one text", "another, longer text"])
    assert probs.shape == (2, 3) and torch.isfinite(probs).all()
    texts = [f"review number {i}" for i in range(4)]
    loader = torch.utils.data.DataLoader(texts, batch_size=2, num_workers=1, collate_fn=model.adapter)
    for batch, start in zip(loader, (0, 2)):
        torch.testing.assert_close(batch[0], model.adapter(texts[start : start + 2])[0])

"""Registry-wide tests (every registered preset): forward, backward with every parameter receiving a gradient,
no NaN, padding invariance, config round trip, checkpoint round trip with identical outputs."""

from __future__ import annotations

import pytest
import torch

import multiseq
from multiseq.adapters.base import EmbedSpec
from multiseq.checkpoint import load_model, save_model
from multiseq.config import ModelConfig
from multiseq.errors import UnknownNameError


def random_inputs(spec: EmbedSpec, batch: int, length: int, generator: torch.Generator | None = None):
    """Random adapter output `(x, mask)` for an embedding spec; the second row is padded when length > 2."""
    g = generator
    if spec.kind == "token":
        x = torch.randint(1, spec.vocab_size, (batch, length), generator=g)
    elif spec.kind == "linear":
        x = torch.randn(batch, length, spec.in_features, generator=g)
    else:
        H, W = spec.img_size
        x = torch.randn(batch, spec.in_chans, H, W, generator=g)
        length = spec.grid[0] * spec.grid[1]
    mask = torch.ones(batch, length, dtype=torch.bool)
    if spec.kind != "patch" and batch > 1 and length > 2:
        mask[1, length // 2 :] = False
        if spec.kind == "token":
            x[1, length // 2 :] = 0
    return x, mask


def short_length(config) -> int:
    """A short length the preset accepts (grids keep their size)."""
    return min(config.adapter.max_length, 48)


# Registry-wide checks run at a reduced size: the structure of every preset, not its full width.
SMALL = {"width": 32}


def _small(name: str) -> ModelConfig:
    cfg = multiseq.get_model_config(name)
    return cfg.replace(**SMALL, depth=min(cfg.depth, 2) if len(cfg.blocks) == 1 else cfg.depth)


def _distinct(names: list[str]) -> list[str]:
    """One preset per distinct reduced config: sizes of one family (tiny/small/base) reduce to the same model, so
    testing each would repeat the same check."""
    seen, out = set(), []
    for n in names:
        key = _small(n).replace(name="").to_json()
        if key not in seen:
            seen.add(key)
            out.append(n)
    return out


ALL = multiseq.list_models()
DISTINCT = _distinct(ALL)


def _make(name: str):
    cfg = _small(name)
    model = multiseq.create_model(cfg)
    spec = model.adapter.embed_spec()
    return cfg, model, spec


def _forward(model, x, m):
    if model.is_dual:
        return model(x, m, x.flip(0), m.flip(0))
    return model(x, m)


def test_baseline_presets_listed():
    names = multiseq.list_models()
    for n in ("attention_bytes_small", "local_bytes_small", "attention_pixels_small", "local_patches_small"):
        assert n in names
    assert multiseq.list_models("local_*") and all(n.startswith("local_") for n in multiseq.list_models("local_*"))


def test_unknown_model_suggests():
    with pytest.raises(UnknownNameError, match="local_bytes_small"):
        multiseq.create_model("local_byte_small")


def test_every_preset_config_round_trips():
    for name in ALL:
        cfg = multiseq.get_model_config(name)
        assert ModelConfig.from_json(cfg.to_json()) == cfg, name


@pytest.mark.parametrize("name", DISTINCT)
def test_preset_forward_backward(name):
    cfg, model, spec = _make(name)
    x, m = random_inputs(spec, 2, short_length(cfg))
    out = _forward(model, x, m)
    assert out.shape == (2, cfg.num_classes)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"parameters without a finite gradient: {missing}"
    zero = [n for n, p in model.named_parameters() if p.requires_grad and p.grad.abs().sum() == 0]
    assert not zero, f"parameters with an all-zero gradient: {zero}"


def _paddable(name: str) -> bool:
    # ViT patch grids are never padded, and causal presets are covered by their own leak tests.
    cfg = multiseq.get_model_config(name)
    return cfg.adapter.kind != "patches" and not cfg.causal


@pytest.mark.parametrize("name", [n for n in DISTINCT if _paddable(n)])
def test_preset_padding_invariance(name):
    cfg, model, spec = _make(name)
    model.eval()
    L = short_length(cfg)
    x, m = random_inputs(spec, 1, L)
    keep = L // 2
    m[:, keep:] = False
    x2 = x.clone()
    if spec.kind == "token":
        x[:, keep:] = 0
        x2[:, keep:] = torch.randint(1, spec.vocab_size, (1, L - keep))
    else:
        x2[:, keep:] = torch.randn_like(x2[:, keep:]) * 5
    with torch.no_grad():
        a, ma = model.features(x, m)
        b, _ = model.features(x2, m)
        short, ms = model.features(x[:, :keep], m[:, :keep])
    real = ma[0]
    torch.testing.assert_close(a[0][real], b[0][real], atol=1e-5, rtol=1e-4)
    # Pads at the end change nothing against the unpadded sequence.
    torch.testing.assert_close(a[0][real], short[0][ms[0]], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", DISTINCT)
def test_preset_config_and_checkpoint_round_trip(name, tmp_path):
    cfg, model, spec = _make(name)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    model.eval()
    x, m = random_inputs(spec, 2, short_length(cfg))
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(_forward(model, x, m), _forward(loaded, x, m), atol=0, rtol=0)


def _empty_inputs(spec: EmbedSpec, batch: int, length: int):
    if spec.kind == "token":
        return torch.zeros(batch, length, dtype=torch.long), torch.zeros(batch, length, dtype=torch.bool)
    if spec.kind == "linear":
        return torch.zeros(batch, length, spec.in_features), torch.zeros(batch, length, dtype=torch.bool)
    H, W = spec.img_size
    return torch.zeros(batch, spec.in_chans, H, W), None


@pytest.mark.parametrize("name", DISTINCT)
def test_preset_empty_batch_and_length_zero(name):
    """Issue 18 item 10: batch 0 -> (0, C) logits and predict([]) -> (0,); length 0 -> the all-padding row's logits."""
    cfg, model, spec = _make(name)
    model.eval()
    with torch.no_grad():
        x, m = _empty_inputs(spec, 0, short_length(cfg))
        assert _forward(model, x, m).shape == (0, cfg.num_classes)
        assert model.predict([], [] if model.is_dual else None).shape == (0,)
        assert model.predict_proba([], [] if model.is_dual else None).shape == (0, cfg.num_classes)
        if spec.kind == "patch":
            return  # a ViT grid has no length to make 0
        x0, m0 = _empty_inputs(spec, 2, 0)
        out0 = _forward(model, x0, m0)
        assert out0.shape == (2, cfg.num_classes) and torch.isfinite(out0).all()
        xp, mp = _empty_inputs(spec, 2, 5)  # an all-padding row of length 5
        torch.testing.assert_close(out0, _forward(model, xp, mp), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", DISTINCT)
def test_preset_all_padding_row_is_finite(name):
    """Issue 18 item 4: an all-padding row (an empty text) next to real rows: finite logits and gradients."""
    cfg, model, spec = _make(name)
    if spec.kind == "patch":
        pytest.skip("ViT patch grids are never padded")
    x, m = random_inputs(spec, 2, short_length(cfg))
    m[1] = False
    if spec.kind == "token":
        x[1] = 0
    out = _forward(model, x, m)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ["attention_bytes_tiny", "s4d_bytes_tiny", "mega_pixels_tiny", "attention_patches_tiny"])
def test_num_classes_zero_is_a_feature_extractor(name):
    """Issue 18 item 13: create_model(..., num_classes=0) returns pooled features (B, head_features), timm style."""
    cfg = _small(name).replace(num_classes=0)
    model = multiseq.create_model(cfg)
    spec = model.adapter.embed_spec()
    x, m = random_inputs(spec, 2, short_length(cfg))
    model.eval()
    with torch.no_grad():
        feats = model(x, m)
        h, hm = model.forward_features(x, m)
        assert feats.shape == (2, model.head_features)
        torch.testing.assert_close(feats, multiseq.heads.masked_pool(h, hm, cfg.head.pool))
        model.reset_classifier(3)
        assert model(x, m).shape == (2, 3) and model.config.num_classes == 3
        model.reset_classifier(0)
        torch.testing.assert_close(model(x, m), feats)
    assert multiseq.create_model(name, num_classes=0).num_classes == 0
    with pytest.raises(multiseq.errors.InputError, match="feature extractor"):
        model.predict_proba([b"x"] if spec.kind == "token" else [])
    with pytest.raises(multiseq.errors.ConfigError, match="num_classes"):
        cfg.replace(num_classes=-1)


def test_cpu_recipes_give_training_defaults_with_a_budget():
    from multiseq.cli.train import _recipe
    from multiseq.presets.cpu import recipe

    for name in ("s4d_imdb_bytes", "s4d_imdb_render"):
        r = recipe(name)
        assert r["budget_minutes"] > 0 and r["lr"] > 0 and name in multiseq.list_models("*imdb*")
        assert _recipe(name) == r
    assert recipe("s4d_bytes_tiny") is None
    assert _recipe("s4d_lra_listops")["batch_size"] > 0  # the LRA recipes still answer

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

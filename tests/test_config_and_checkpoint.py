"""Config JSON round trip and validation; model files: atomic, verified, never unpickled."""

from __future__ import annotations

import json
import struct

import pytest
import torch

import multiseq
from multiseq.checkpoint import load_model, read_checkpoint, save_model
from multiseq.config import BlockSpec, ModelConfig
from multiseq.errors import CheckpointError, ConfigError, UnknownNameError


def test_json_round_trip_and_unknown_keys():
    cfg = multiseq.get_model_config("local_bytes_small", num_classes=5, blocks=["attention", "local"], depth=2)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    d = json.loads(cfg.to_json())
    d["widht"] = 3
    with pytest.raises(ConfigError, match="'widht'.*Did you mean 'width'"):
        ModelConfig.from_dict(d)
    d = json.loads(cfg.to_json())
    d["adapter"]["max_lenght"] = 3
    with pytest.raises(ConfigError, match="max_length"):
        ModelConfig.from_dict(d)
    with pytest.raises(ConfigError, match="JSON"):
        ModelConfig.from_json("{not json")


def test_validation_messages():
    with pytest.raises(ConfigError, match="depth is 3"):
        ModelConfig(blocks=["local", "attention"], depth=3)
    with pytest.raises(ConfigError, match="positional"):
        ModelConfig(positional="rotary??")
    with pytest.raises(ConfigError, match="unknown key"):
        multiseq.get_model_config("local_bytes_small", hidden_size=3)


def test_hybrid_is_a_config_line():
    cfg = ModelConfig(blocks=[BlockSpec("local", {"window": 8, "heads": 2}), "attention"], depth=2, width=16)
    model = multiseq.create_model(cfg)
    names = [type(layer.block).__name__ for layer in model.backbone.layers]
    assert names == ["LocalAttention", "Attention"]
    assert model(*model.encode(["some text"])).shape == (1, 2)


def test_block_errors():
    with pytest.raises(UnknownNameError, match="local"):
        multiseq.create_model(ModelConfig(blocks=["locl"]))
    with pytest.raises(ConfigError, match="no option 'windw'"):
        multiseq.create_model(ModelConfig(blocks=[BlockSpec("local", {"windw": 3})]))


def test_dual_head_and_pools():
    for pool in ("mean", "cls", "last", "max"):
        m = multiseq.create_model("local_bytes_tiny", head={"pool": pool})
        assert torch.isfinite(m(*m.encode(["abc", ""]))).all()
    dual = multiseq.create_model("attention_bytes_tiny", head={"kind": "dual"}, num_classes=2)
    x, m = dual.encode(["doc one", "another"])
    x2, m2 = dual.encode(["doc two", "x"])
    assert dual(x, m, x2, m2).shape == (2, 2)
    assert dual.predict(["a", "b"], ["c", "d"]).shape == (2,)


def _saved(tmp_path):
    model = multiseq.create_model("local_bytes_tiny")
    return model, save_model(model, tmp_path / "model.safetensors")


def test_truncated_checkpoint(tmp_path):
    _, path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        load_model(path)
    path.write_bytes(data[:4])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(path)


def test_tampered_checkpoint(tmp_path):
    _, path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits in the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(path)


def test_hostile_and_foreign_files(tmp_path):
    bad = tmp_path / "pickle.safetensors"
    bad.write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n" * 10)  # a pickle, never unpickled
    with pytest.raises(CheckpointError):
        load_model(bad)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(CheckpointError, match="header"):
        read_checkpoint(huge)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="not a multiseq model"):
        load_model(tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.safetensors")


def test_config_mismatch(tmp_path):
    model, path = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="different model config"):
        load_model(path, config=model.config.replace(num_classes=3))


def test_atomic_write_leaves_no_temp_files(tmp_path):
    model, path = _saved(tmp_path)
    save_model(model, path)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]

"""Config JSON round trip and validation; model files: atomic, verified, never unpickled."""

from __future__ import annotations

import json
import struct

import pytest
import torch

import multiseq
from multiseq.checkpoint import (
    load_model,
    model_file_sha256,
    read_checkpoint,
    read_model_metadata,
    resave_legacy_model_file,
    save_model,
    tensors_sha256,
)
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


# --- issue 18 item 3: the digest covers config and metadata; sizes are checked before anything is built ---------


def _split(path):
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(path, header, body):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def _rewrite_meta(path, edit, redigest=False):
    """Edit the header metadata; with `redigest` the attacker also recomputes the sha256 (a self-consistent file)."""
    header, body = _split(path)
    meta = header["__metadata__"]
    edit(meta)
    if redigest:
        from safetensors.torch import load as st_load

        meta["sha256"] = model_file_sha256(st_load(path.read_bytes()), meta)
    _join(path, header, body)


def test_flipped_bit_in_header_config_is_refused(tmp_path):
    _, path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.index(b'"window\\": 128')  # the config JSON is a string inside the header JSON
    data[at + len(b'"window\\": 1')] ^= 0x01  # '2' -> '3': window 128 -> 138, still valid JSON
    path.write_bytes(bytes(data))
    assert json.loads(_split(path)[0]["__metadata__"]["config"])["blocks"][0]["options"]["window"] == 138
    with pytest.raises(CheckpointError, match="sha256.*config"):
        load_model(path)


@pytest.mark.parametrize("field", ["causal", "pool", "heads"])
def test_edited_config_field_that_keeps_shapes_is_refused(tmp_path, field):
    _, path = _saved(tmp_path)

    def edit(meta):
        cfg = json.loads(meta["config"])
        if field == "causal":
            cfg["causal"] = True
        elif field == "pool":
            cfg["head"]["pool"] = "max"
        else:
            cfg["blocks"][0]["options"]["heads"] = 8
        meta["config"] = json.dumps(cfg)

    _rewrite_meta(path, edit)
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(path)


def test_class_names_and_extra_metadata_are_covered_and_read_back(tmp_path):
    model = multiseq.create_model("local_bytes_tiny")
    path = save_model(model, tmp_path / "m.safetensors", extra_metadata={"note": "v1"}, class_names=["neg", "pos"])
    meta = read_model_metadata(path)
    assert meta["class_names"] == ["neg", "pos"] and meta["note"] == "v1"
    assert meta["config"] == model.config.to_dict() and meta["format"] == "multiseq.model/2"
    loaded = load_model(path)
    assert loaded.metadata["class_names"] == ["neg", "pos"] and loaded.metadata["note"] == "v1"
    # the same through extra_metadata's key (what the trainer writes)
    p2 = save_model(model, tmp_path / "m2.safetensors", extra_metadata={"class_names": json.dumps(["a", "b"])})
    assert read_model_metadata(p2)["class_names"] == ["a", "b"]
    assert read_model_metadata(save_model(model, tmp_path / "m3.safetensors"))["class_names"] is None
    for key, edit in {
        "class_names": lambda m: m.update(class_names=json.dumps(["pos", "neg"])),  # swapped
        "note": lambda m: m.update(note="v2"),
        "added": lambda m: m.update(added="x"),
        "removed": lambda m: m.pop("note"),
    }.items():
        p = tmp_path / f"{key}.safetensors"
        p.write_bytes(path.read_bytes())
        _rewrite_meta(p, edit)
        with pytest.raises(CheckpointError, match="sha256"):
            load_model(p)
        with pytest.raises(CheckpointError, match="sha256"):
            read_model_metadata(p)


def test_save_model_validates_metadata(tmp_path):
    model = multiseq.create_model("local_bytes_tiny")
    with pytest.raises(ConfigError, match="2 classes"):
        save_model(model, tmp_path / "m.safetensors", class_names=["a", "b", "c"])
    with pytest.raises(ConfigError, match="duplicate"):
        save_model(model, tmp_path / "m.safetensors", class_names=["a", "a"])
    with pytest.raises(ConfigError, match="reserved"):
        save_model(model, tmp_path / "m.safetensors", extra_metadata={"config": "{}"})
    with pytest.raises(ConfigError, match="str to str"):
        save_model(model, tmp_path / "m.safetensors", extra_metadata={"n": 3})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"depth": 10**6}, "depth = 1000000 is beyond"),
        ({"width": 10**6}, "width = 1000000 is beyond"),
        ({"depth": 3}, "depth 3 but the file holds tensors for 2 layers"),
        ({"adapter": {"kind": "bytes", "max_length": 10**9, "options": {}}}, "max_length"),
        ({"blocks": [{"name": "local", "options": {"heads": 4, "window": 128}}], "ffn_mult": 64.0}, "asks for about"),
        ({"head": {"hidden": 4096, "kind": "mlp", "pool": "mean"}}, "asks for about"),
    ],
)
def test_hostile_sizes_are_refused_before_building(tmp_path, monkeypatch, change, message):
    """A self-consistent file (digest recomputed) whose config asks for more than its tensors hold."""
    _, path = _saved(tmp_path)

    def edit(meta):
        cfg = json.loads(meta["config"])
        cfg.update(change)
        meta["config"] = json.dumps(cfg)

    _rewrite_meta(path, edit, redigest=True)
    from multiseq import sequence_model

    built = []
    real_init = sequence_model.SequenceModel.__init__

    def spy(self, config, *a, **k):
        if config.width == 64 and config.depth == change.get("depth", 2):  # a build at the file's own size
            built.append(config)
        real_init(self, config, *a, **k)

    monkeypatch.setattr(sequence_model.SequenceModel, "__init__", spy)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)
    assert not built, "the model was built before its sizes were checked"


def test_old_format_is_refused_with_a_way_to_resave(tmp_path):
    model, path = _saved(tmp_path)
    tensors, _ = read_checkpoint(path)

    def to_v1(meta):  # what multiseq.model/1 wrote: a digest over the tensors only
        meta["format"] = "multiseq.model/1"
        meta["sha256"] = tensors_sha256(tensors)

    _rewrite_meta(path, to_v1)
    with pytest.raises(CheckpointError, match="old multiseq model file.*resave_legacy_model_file"):
        load_model(path)
    resave_legacy_model_file(path)
    x, m = model.encode(["abc", "de"])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(load_model(path).eval()(x, m), model(x, m), atol=0, rtol=0)

"""A rendering model's file records what decides its pixels and warns when loaded under a different setup."""

import json
import warnings

import pytest

import multiseq
from multiseq.checkpoint import load_model, read_model_metadata, save_model


def _render_model():
    return multiseq.create_model("s4d_render_tiny", adapter={"max_length": 32}, width=16, depth=1)


def test_rendering_environment_is_recorded_and_silent_on_the_same_machine(tmp_path):
    path = save_model(_render_model(), tmp_path / "m.safetensors")
    env = json.loads(read_model_metadata(path)["render_environment"])
    assert env["fonts"] and all(len(f["sha256"]) == 64 for f in env["fonts"]) and "pango" in env["libraries"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(path)


def test_a_different_font_or_library_warns_on_load(tmp_path, monkeypatch):
    import renderers

    real = renderers.environment

    def elsewhere(config):
        env = real(config)
        env["fonts"][0]["sha256"] = "0" * 64
        env["libraries"]["pango"] = "0.0.1"
        return env

    monkeypatch.setattr(renderers, "environment", elsewhere)
    path = save_model(_render_model(), tmp_path / "m.safetensors")
    monkeypatch.setattr(renderers, "environment", real)
    with pytest.warns(UserWarning, match="rendered by a different setup.*(sha256|pango)"):
        load_model(path)


def test_models_that_do_not_render_record_nothing(tmp_path):
    path = save_model(multiseq.create_model("s4d_bytes_tiny", width=16, depth=1), tmp_path / "b.safetensors")
    assert "render_environment" not in read_model_metadata(path)

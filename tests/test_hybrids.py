"""Hybrid presets: which are registered, and that their layer lists mix the intended blocks.

Forward, backward, padding and checkpoint round trips of every hybrid run in the registry-wide tests.
"""

from __future__ import annotations

import pytest
import torch

import multiseq
from multiseq.presets import hybrids

EXPECTED = [f"{h}_{a}_{s}" for h in ("spade", "s4_mega", "contextpool_stack")
            for a in ("bytes", "pixels", "patches") for s in ("tiny", "small", "base")]


def test_expected_hybrids_are_registered():
    missing = sorted(set(EXPECTED) - set(multiseq.list_models()))
    assert not missing, f"hybrid presets not registered (is a block missing from list_blocks()?): {missing}"


@pytest.mark.parametrize("size,depth", [("tiny", 2), ("small", 4), ("base", 6)])
def test_layer_lists(size, depth):
    spade = multiseq.get_model_config(f"spade_bytes_{size}")
    assert [b.name for b in spade.layers] == ["s4d"] + ["local"] * (depth - 1)
    assert spade.positional == "none"
    s4mega = multiseq.get_model_config(f"s4_mega_pixels_{size}")
    assert [b.name for b in s4mega.layers] == ["s4d"] + ["mega"] * (depth - 1)
    stack = multiseq.get_model_config(f"contextpool_stack_patches_{size}")
    assert [b.name for b in stack.layers] == ["local"] + ["contextpool+local"] * (depth - 1)
    assert stack.layers[1].options["grid"] == [8, 8]
    assert "grid" not in multiseq.get_model_config(f"contextpool_stack_bytes_{size}").layers[1].options


def test_hybrid_registered_only_when_its_blocks_are(monkeypatch):
    monkeypatch.setattr(hybrids, "list_blocks", lambda: ["contextpool", "local", "s4d"])
    assert hybrids.registrable("spade") and hybrids.registrable("contextpool_stack")
    assert not hybrids.registrable("s4_mega")


def test_hybrid_model_runs_each_block_kind():
    model = multiseq.create_model("spade_bytes_tiny", width=32)
    kinds = [type(layer.block).__name__ for layer in model.backbone.layers]
    assert kinds[0] != kinds[1]
    x = torch.randint(1, 256, (2, 40))
    m = torch.ones(2, 40, dtype=torch.bool)
    assert torch.isfinite(model(x, m)).all()

"""Rendered-text presets `{family}_render_{size}`: each single-block family's byte-level preset with the `render`
adapter (PIXEL's 529 patches of 16x16, 256 gray values each) in place of UTF-8 bytes.

Two choices differ from the byte-level presets because these models are trained from scratch, without PIXEL's
pretraining: texts are rendered word by word (every word starts on a patch boundary, so the same word always gives
the same patches) and the head max-pools over patches. With PIXEL's continuous rendering a small model stayed at
chance on IMDb in 300- and 600-step runs; mean-pooled features of different reviews are almost equal (with mean
pooling `s4d_render_tiny` could not fit even 32 reviews in 60 steps, with max pooling it fit them in 40). Word
rendering with max pooling learns (`examples/imdb_rendered.py`). Continuous rendering is one override away:
`create_model("s4d_render_tiny", adapter={"kind": "render", "max_length": 529, "options": {"config": "pixel"}})`.

A family gets render presets when it has a `{family}_bytes_small` preset built from one block spec (wrapper
compositions such as `contextpool+local` included; layer-list hybrids are left out). The other preset modules
are imported first, so a family added in a new module appears here without an edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace

import multiseq.presets as _package
from multiseq.config import AdapterConfig, ModelConfig
from multiseq.models import _MODELS, get_model_config, register_model

RENDER = AdapterConfig("render", max_length=529, options={"config": "pixel", "rendering": "words"})
# Two sizes: `tiny` for CPU runs and examples, `small` as the reference size. Larger stacks are one override away
# (`get_model_config("local_render_small", width=256, depth=6)`), and every preset costs registry-wide tests.
SIZES = ("tiny", "small")

for _info in sorted(pkgutil.iter_modules(_package.__path__), key=lambda m: m.name):
    if not _info.name.startswith("_") and _info.name != __name__.rsplit(".", 1)[1]:
        importlib.import_module(f"{_package.__name__}.{_info.name}")


def _families() -> list[str]:
    """Prefixes `P` whose `P_bytes_small` preset is a single-block stack."""
    out = []
    for name in sorted(_MODELS):
        if name.endswith("_bytes_small") and len(_MODELS[name]().blocks) == 1:
            out.append(name[: -len("_bytes_small")])
    return out


def _register(family: str, size: str) -> str:
    name = f"{family}_render_{size}"
    source = f"{family}_bytes_{size}"

    def preset() -> ModelConfig:
        config = get_model_config(source)
        return config.replace(name=name, adapter=RENDER, head=replace(config.head, pool="max"))

    register_model(preset, name=name)
    return name


RENDER_PRESETS = [
    _register(family, size) for family in _families() for size in SIZES if f"{family}_bytes_{size}" in _MODELS
]

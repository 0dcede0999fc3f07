"""Rendered-text presets `{family}_render_{size}`: each single-block family's byte-level preset with the `render`
adapter (PIXEL's 529 patches of 16x16, 256 gray values each) in place of UTF-8 bytes.

A family gets render presets when it has a `{family}_bytes_small` preset built from one block spec (wrapper
compositions such as `contextpool+local` included; layer-list hybrids are left out). The other preset modules
are imported first, so a family added in a new module appears here without an edit.
"""

from __future__ import annotations

import importlib
import pkgutil

import multiseq.presets as _package
from multiseq.config import AdapterConfig, ModelConfig
from multiseq.models import _MODELS, get_model_config, register_model

RENDER = AdapterConfig("render", max_length=529, options={"config": "pixel"})
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
        return get_model_config(source).replace(name=name, adapter=RENDER)

    register_model(preset, name=name)
    return name


RENDER_PRESETS = [
    _register(family, size) for family in _families() for size in SIZES if f"{family}_bytes_{size}" in _MODELS
]

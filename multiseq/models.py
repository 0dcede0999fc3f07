"""Model registry, timm style: presets are registered functions returning a `ModelConfig`.

    create_model("mega_bytes_small", num_classes=10)
    list_models("s4*")

Preset names follow `{backbone}_{adapter}_{size}`. Presets live in `multiseq/presets/` (one module per family).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from multiseq.config import ModelConfig, with_overrides
from multiseq.errors import unknown_name

_MODELS: dict[str, Callable[[], ModelConfig]] = {}

PresetFn = Callable[[], ModelConfig]


def register_model(fn: PresetFn | None = None, *, name: str | None = None) -> Any:
    """Register a preset function (its name is the preset name unless `name` is given)."""

    def deco(f: PresetFn) -> PresetFn:
        key = name or f.__name__
        if key in _MODELS and _MODELS[key] is not f:
            raise ValueError(f"model {key!r} is already registered")
        _MODELS[key] = f
        return f

    return deco(fn) if fn is not None else deco


def _load_presets() -> None:
    import multiseq.presets  # noqa: F401  (registers on import)


def list_models(pattern: str = "*") -> list[str]:
    """Registered preset names matching a glob pattern, sorted."""
    _load_presets()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """The `ModelConfig` of preset `name`, with overrides (`adapter=`/`head=` may be partial dicts)."""
    _load_presets()
    if name not in _MODELS:
        raise unknown_name("model", name, _MODELS)
    config = _MODELS[name]()
    config = with_overrides(config, {"name": name, **overrides}) if overrides or config.name != name else config
    return config


def create_model(name_or_config: str | ModelConfig, device: Any = None, dtype: Any = None, **overrides: Any):
    """Build a `SequenceModel` from a preset name (with overrides) or a `ModelConfig`."""
    from multiseq.sequence_model import SequenceModel

    if isinstance(name_or_config, ModelConfig):
        config = with_overrides(name_or_config, overrides) if overrides else name_or_config
    else:
        config = get_model_config(name_or_config, **overrides)
    return SequenceModel(config, device=device, dtype=dtype)

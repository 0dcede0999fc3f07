"""Modality adapters: raw input -> `(x, mask)` with a bool mask (True = real token).

Every module in this package registers its adapters on import; see `base.py` for the contract.
"""

from __future__ import annotations

import importlib
import pkgutil

from multiseq.adapters.base import Adapter, EmbedSpec, build_adapter, list_adapters, register_adapter

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in ("base", "images") and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Adapter", "EmbedSpec", "build_adapter", "list_adapters", "register_adapter"]

"""Backbone blocks. Each module in this package registers its blocks on import (see `registry.py`).

Modules are discovered rather than listed, so adding a block family is adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil

from multiseq.blocks.registry import build_block, get_block_class, list_blocks, mark_optim, register_block

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "registry" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["build_block", "get_block_class", "list_blocks", "mark_optim", "register_block"]

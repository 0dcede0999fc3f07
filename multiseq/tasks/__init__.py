"""LRA tasks and real data sets behind one entry point.

    ds = multiseq.tasks.get("listops", split="val", size=200)
    source, label = ds[0]            # raw input; ds.adapter turns a batch of them into (x, mask)

Every dataset has `task`, `num_classes`, `pair`, `adapter` (an `AdapterConfig` that fits it) and `labels`.
Generated tasks (ListOps, Pathfinder) are generated on first use into `root` / `$MULTISEQ_DATA` /
`~/.cache/multiseq`; real-data tasks read `/work/shared/data`'s archives by default, or `root=`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from multiseq.errors import ConfigError
from multiseq.tasks._common import DataError, TaskDataset, check_positive
from multiseq.tasks.memory import InMemoryDataset
from multiseq.tasks.registry import describe_tasks, get, list_tasks, register_task, task_entry
from multiseq.tasks.subset import Subset, balanced_indices

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "registry" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")


def load_task(
    name: str,
    split: str,
    options: dict[str, Any] | None = None,
    limit: int | None = None,
    progress: bool = False,
    seed: int = 0,
) -> Any:
    """A dataset split by task name (see `get`) or `module:function`; optionally a seeded, class-balanced subset.

    Args:
        name: a registered task name, or `module:function` returning a dataset for `function(split=..., **options)`.
        split: `train`, `val` or `test`.
        options: task options (`root`, `size`, ...).
        limit: keep a seeded, class-balanced subset of `limit` items (a `Subset`; see `balanced_indices`).
        progress: show a bar while a generated task is being made (where the task takes `progress`).
        seed: seed of the `limit` subset.
    """
    check_positive("limit", limit)
    options = dict(options or {})
    if ":" in name:
        module, func = name.split(":", 1)
        try:
            factory = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"cannot load task {name!r}: {e}") from None
        data = factory(split=split, **options)
    else:
        if progress and "progress" not in options and "progress" in task_entry(name).options():
            options["progress"] = True  # a bar while a generated task is being made
        data = get(name, split=split, **options)
    return Subset(data, limit, seed) if limit is not None else data


__all__ = [
    "DataError",
    "InMemoryDataset",
    "Subset",
    "balanced_indices",
    "TaskDataset",
    "describe_tasks",
    "get",
    "list_tasks",
    "load_task",
    "register_task",
    "task_entry",
]

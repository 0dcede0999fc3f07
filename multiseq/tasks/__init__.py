"""LRA tasks and real data sets behind one entry point.

    ds = multiseq.tasks.get("listops", split="val", size=200)
    source, label = ds[0]            # raw input; ds.adapter turns a batch of them into (x, mask)

Every dataset has `task`, `num_classes`, `pair`, `adapter` (an `AdapterConfig` that fits it) and `labels`.
Generated tasks (ListOps, Pathfinder) are generated on first use into `root` / `$MULTISEQ_DATA` /
`~/.cache/multiseq`; real-data tasks read `/work/shared/data`'s archives by default, or `root=`.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any

from multiseq.errors import ConfigError, unknown_name
from multiseq.tasks._common import DataError, TaskDataset
from multiseq.tasks.memory import InMemoryDataset
from multiseq.tasks.subset import Subset

# name -> (module, factory attribute, fixed keyword arguments, one-line description)
_TASKS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "listops": ("multiseq.tasks.listops", "ListOpsDataset", {}, "LRA ListOps, generated (10 classes, <= 2,000 tokens)"),
}


def register_task(name: str, module: str, factory: str, description: str, **fixed: Any) -> None:
    """Register a task name: `get(name)` calls `module.factory(**fixed, **options)`."""
    _TASKS[name] = (module, factory, fixed, description)


def list_tasks() -> list[str]:
    """Names `get` accepts."""
    return sorted(_TASKS)


def describe_tasks() -> dict[str, str]:
    """Task name -> one-line description."""
    return {name: _TASKS[name][3] for name in list_tasks()}


def _factory(name: str) -> tuple[Callable[..., TaskDataset], dict[str, Any]]:
    if name not in _TASKS:
        raise unknown_name("task", name, _TASKS)
    module, attr, fixed, _ = _TASKS[name]
    return getattr(importlib.import_module(module), attr), fixed


def get(name: str, split: str = "train", root: str | os.PathLike | None = None, **options: Any) -> TaskDataset:
    """Build a task's dataset.

    Args:
        name: one of `list_tasks()` (`listops`, `text`, `retrieval`, `image`, `pathfinder`, `pathx`, ...).
        split: `train`, `val` or `test`.
        root: where data lives / is generated (see each task).
        **options: task options (e.g. `size=`, `seed=`, `max_length=`); unknown ones raise `ConfigError`
            listing the valid ones.

    Returns:
        A `torch.utils.data.Dataset` whose items are `(raw inputs, label)`.
    """
    factory, fixed = _factory(name)
    params = inspect.signature(factory).parameters
    valid = sorted(p for p in params if p not in ("split", "root", *fixed))
    for key in options:
        if key not in params or key in fixed:
            raise ConfigError(f"unknown option {key!r} for task {name!r}; valid options: {', '.join(valid)}")
    return factory(split=split, root=root, **fixed, **options)


def load_task(
    name: str, split: str, options: dict[str, Any] | None = None, limit: int | None = None, progress: bool = False
) -> Any:
    """A dataset split by task name (see `get`) or `module:function`; optionally its first `limit` items.

    Args:
        name: a registered task name, or `module:function` returning a dataset for `function(split=..., **options)`.
        split: `train`, `val` or `test`.
        options: task options (`root`, `size`, ...).
        limit: keep only the first `limit` items (a `Subset`).
        progress: show a bar while a generated task is being made (where the task takes `progress`).
    """
    options = dict(options or {})
    if ":" in name:
        module, func = name.split(":", 1)
        try:
            factory = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"cannot load task {name!r}: {e}") from None
        data = factory(split=split, **options)
    else:
        if progress and "progress" not in options and name in _TASKS:
            factory, fixed = _factory(name)
            if "progress" in inspect.signature(factory).parameters and "progress" not in fixed:
                options["progress"] = True
        data = get(name, split=split, **options)
    return Subset(data, limit) if limit else data


_OPTIONAL = ("text", "retrieval", "images", "pathfinder")
for _mod in _OPTIONAL:  # each module registers its task names; a missing one is not an import error here
    try:
        importlib.import_module(f"multiseq.tasks.{_mod}")
    except ModuleNotFoundError as _e:
        if _e.name != f"multiseq.tasks.{_mod}":
            raise

__all__ = [
    "DataError",
    "InMemoryDataset",
    "Subset",
    "TaskDataset",
    "describe_tasks",
    "get",
    "list_tasks",
    "load_task",
    "register_task",
]

"""Task registry: every task name is registered by a decorator on its dataset class, like blocks and presets.

    @register_task("pathx", "LRA Path-X: 128 px snakes", generated=True, resolution=128, task="pathx")
    class PathfinderDataset(TaskDataset): ...

`get(name, split=..., root=..., **options)` calls `factory(split=split, root=root, **fixed, **options)`. Every
module of `multiseq.tasks` is imported on first use of the registry (found by scanning the package), so adding a
task is adding one file. `generated` says whether the data are made here (ListOps, Pathfinder) or read.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multiseq.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class TaskEntry:
    """One registered name: the factory, its fixed keyword arguments, a description, generated or read."""

    factory: Callable[..., Any]
    description: str
    generated: bool = False
    fixed: dict[str, Any] = field(default_factory=dict)

    def options(self) -> list[str]:
        """Options `get` accepts for this name (the factory's parameters less split, root and the fixed ones)."""
        params = inspect.signature(self.factory).parameters
        return sorted(p for p in params if p not in ("split", "root", *self.fixed))


_TASKS: dict[str, TaskEntry] = {}


def register_task(name: str, description: str, *, generated: bool = False, **fixed: Any) -> Callable:
    """Decorator registering a dataset class (or factory) under `name`, with `fixed` keyword arguments."""

    def deco(factory: Callable) -> Callable:
        old = _TASKS.get(name)
        if old is not None and old.factory is not factory:
            raise ValueError(f"task {name!r} is already registered by {old.factory.__qualname__}")
        _TASKS[name] = TaskEntry(factory, description, generated, dict(fixed))
        return factory

    return deco


def task_entry(name: str) -> TaskEntry:
    """The entry registered as `name`; an unknown name raises with near matches."""
    _load_all()
    if name not in _TASKS:
        raise unknown_name("task", name, _TASKS)
    return _TASKS[name]


def list_tasks(generated: bool | None = None) -> list[str]:
    """Names `get` accepts; with `generated`, only the generated (True) or read (False) ones."""
    _load_all()
    return sorted(n for n, e in _TASKS.items() if generated is None or e.generated == generated)


def describe_tasks() -> dict[str, str]:
    """Task name -> one-line description."""
    return {name: _TASKS[name].description for name in list_tasks()}


def get(name: str, split: str = "train", root: str | os.PathLike | None = None, **options: Any) -> Any:
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
    entry = task_entry(name)
    valid = entry.options()
    for key in options:
        if key not in valid:
            raise ConfigError(f"unknown option {key!r} for task {name!r}; valid options: {', '.join(valid)}")
    return entry.factory(split=split, root=root, **entry.fixed, **options)


_loaded = False


def _load_all() -> None:
    # Importing the package imports every task module, which registers its tasks.
    global _loaded
    if not _loaded:
        _loaded = True
        import multiseq.tasks  # noqa: F401

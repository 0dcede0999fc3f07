"""Seeded, class-balanced subsets: the one way a size or limit is taken anywhere in multiseq.

Task files list items class by class (IMDb: all negatives, then all positives; CIFAR-10 by class folder), so "the
first N items" is one class. `balanced_indices` picks N items round-robin over the classes (each class's items in
a seeded order), then shuffles them, so any size holds the classes in equal numbers (as far as each class has
items). `tasks.get(..., size=)`, `load_task(limit=)`, `train --train-limit/--val-limit`, `eval --limit`,
`robustness --limit` and `data preview --size` all go through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B5E7]))


def balanced_indices(labels: Sequence[Any] | np.ndarray, size: int | None, seed: int = 0) -> np.ndarray:
    """Indices of a seeded, class-balanced subset of `size` items, in a seeded random order.

    Args:
        labels: (N,) label of every item (ints or any hashable values).
        size: items wanted; None or more than N gives all N items (shuffled).
        seed: the subset and its order.

    Returns:
        (min(size, N),) int64 indices into `labels`. Classes take turns (in a seeded class order), so every class
        gets `size // num_classes` items or all it has, the rest going to the classes that still have items.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if size is not None and (isinstance(size, bool) or int(size) != size or size < 0):
        raise ValueError(f"size must be a non-negative integer or None, got {size!r}")
    size = n if size is None else min(int(size), n)
    rng = _rng(seed)
    if n == 0 or size == 0:
        return np.zeros(0, dtype=np.int64)
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(-1)
    groups = [rng.permutation(np.flatnonzero(codes == c)) for c in rng.permutation(int(codes.max()) + 1)]
    # Round-robin: turn k takes the k-th item of every class that still has one.
    longest = max(len(g) for g in groups)
    table = np.full((longest, len(groups)), -1, dtype=np.int64)
    for j, g in enumerate(groups):
        table[: len(g), j] = g
    order = table[table >= 0]  # row-major: turn by turn
    return order[:size][rng.permutation(size)].astype(np.int64)


class Subset:
    """A seeded, class-balanced subset of a dataset (see `balanced_indices`), keeping its attributes
    (num_classes, adapter, pair, task, label_names, ...). Without `labels` on the dataset, a seeded random subset.

    Args:
        data: a dataset (`len(data)`, `data[i]`), ideally with a `labels` array.
        size: items kept (None: all, in a seeded order).
        seed: the subset and its order.
    """

    def __init__(self, data: Any, size: int | None, seed: int = 0) -> None:
        self.data = data
        labels = getattr(data, "labels", None)
        if labels is not None and len(labels) == len(data):
            self.indices = balanced_indices(labels, size, seed)
        else:
            n = len(data)
            self.indices = _rng(seed).permutation(n)[: n if size is None else min(size, n)].astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        n = len(self.indices)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset index must be an int, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a subset of {n} items")
        return self.data[int(self.indices[i])]

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.data.labels)[self.indices]

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("data")  # absent while unpickling (DataLoader workers)
        if data is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(data, name)

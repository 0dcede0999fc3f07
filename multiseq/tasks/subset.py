"""`Subset`: the first items of a dataset, keeping its attributes."""

from __future__ import annotations

from typing import Any


class Subset:
    """The first `limit` items of a dataset, keeping its attributes (num_classes, adapter, pair, task, ...)."""

    def __init__(self, data: Any, limit: int) -> None:
        self.data, self.limit = data, min(limit, len(data))

    def __len__(self) -> int:
        return self.limit

    def __getitem__(self, i: int) -> Any:
        if not -self.limit <= i < self.limit:
            raise IndexError(i)
        return self.data[i % self.limit]

    @property
    def labels(self) -> Any:
        return self.data.labels[: self.limit]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["data"], name)

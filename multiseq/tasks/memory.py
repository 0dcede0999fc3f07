"""`InMemoryDataset`: a dataset from two lists, with the attributes `multiseq.train.fit` understands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from multiseq.config import AdapterConfig


class InMemoryDataset(torch.utils.data.Dataset):
    """A dataset from lists: `ds[i] -> (inputs[i], labels[i])`, with the attributes `fit` understands."""

    def __init__(
        self,
        inputs: Sequence[Any],
        labels: Sequence[int],
        num_classes: int | None = None,
        adapter: AdapterConfig | None = None,
        pair: bool = False,
        label_names: Sequence[str] | None = None,
        task: str = "custom",
    ) -> None:
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs, self.labels = list(inputs), np.asarray([int(y) for y in labels], dtype=np.int64)
        self.num_classes = num_classes or (int(self.labels.max()) + 1 if len(self.labels) else 1)
        self.adapter, self.pair, self.task = adapter, pair, task
        self.label_names = list(label_names) if label_names else [str(i) for i in range(self.num_classes)]

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.inputs[i], int(self.labels[i])

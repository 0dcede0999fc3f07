"""The tiny model and toy data the training tests share: one layer of width 16 on 24-byte counting sequences."""

from __future__ import annotations

import multiseq
from multiseq.tasks.toy import count_task

TINY = dict(width=16, depth=1, adapter={"max_length": 24})


def tiny_model(**overrides):
    """`local_bytes_tiny` cut down to `TINY` (plus `overrides`), as a `ModelConfig`."""
    return multiseq.get_model_config("local_bytes_tiny", **{**TINY, **overrides})


def count_data(split="train", n=None):
    """The toy counting task at the tiny model's length."""
    return count_task(split, n=n, length=24)

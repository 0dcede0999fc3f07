"""Small built-in tasks that need no downloads.

`count_task` ("does `a` outnumber `b`?") is used by the README and the tests; `listops_short` is ListOps from LRA's
generator with shallower, shorter trees (the demo's task and the learning checks').
"""

from __future__ import annotations

import random

from multiseq.config import AdapterConfig
from multiseq.tasks.memory import InMemoryDataset


def make_split(n: int, length: int, seed: int) -> tuple[list[str], list[int]]:
    """`n` strings of `length` letters from {a, b, c} and whether `a` outnumbers `b` (never tied)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        s = "".join(rng.choice("abc") for _ in range(length))
        if s.count("a") == s.count("b"):
            s = "a" + s[1:] if s[0] != "a" else s[:-1] + "a"
        texts.append(s)
        labels.append(int(s.count("a") > s.count("b")))
    return texts, labels


def count_task(split: str = "train", n: int | None = None, length: int = 64, seed: int = 0) -> InMemoryDataset:
    """The built-in "does `a` outnumber `b`" task as a dataset (`multiseq train --task multiseq.tasks.toy:count_task`).

    Args:
        split: `train` (default 512 strings), `val` or `test` (128 each); disjoint seeds.
        n: number of strings (overrides the split's default).
        length: characters per string.
        seed: base seed.
    """
    offsets = {"train": 0, "val": 1, "test": 2}
    if split not in offsets:
        raise ValueError(f"split must be one of {sorted(offsets)}, got {split!r}")
    n = n if n is not None else (512 if split == "train" else 128)
    texts, labels = make_split(n, length, seed * 10 + offsets[split])
    return InMemoryDataset(texts, labels, 2, AdapterConfig("bytes", max_length=length), label_names=["b>=a", "a>b"], task="count")


def listops_short(split: str, n: int, max_depth: int = 5, max_args: int = 5, min_length: int = 50,
                  max_length: int = 400, seed: int = 0, progress: bool = False) -> InMemoryDataset:
    """ListOps from LRA's generator with shallower, shorter trees, as an in-memory dataset (listops adapter)."""
    from multiseq.tasks.listops import ListOpsSpec, generate

    spec = ListOpsSpec(max_depth=max_depth, max_args=max_args, min_length=min_length, max_length=max_length)
    rows = generate(n, seed=seed, split=split, spec=spec, workers=1, progress=progress)
    return InMemoryDataset([r[0] for r in rows], [r[1] for r in rows], 10,
                           AdapterConfig("listops", max_length=max_length + 1), task="listops-short")

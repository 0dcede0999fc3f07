"""Feeding a model: the training stream's order, this process's micro-batches, collation by the model's adapter,
and building (or checking) a model for a dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from multiseq.config import AdapterConfig, ModelConfig
from multiseq.errors import ConfigError
from multiseq.train.config import TrainConfig


def stream_indices(num_examples: int, seed: int, start: int, count: int) -> list[int]:
    """Dataset indices at positions `start .. start+count-1` of the training stream.

    The stream is the concatenation of per-epoch permutations, epoch `e` shuffled by a generator seeded with
    `(seed, e)`; the position alone therefore says where a run is in its data.
    """
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, num_examples)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(num_examples, generator=g)
        take = min(count - len(out), num_examples - offset)
        out.extend(perm[offset : offset + take].tolist())
        pos += take
    return out


class _MicroBatches(torch.utils.data.Sampler):
    """Yields this process's micro-batches (lists of indices) for steps `start_step ..`; see `stream_indices`."""

    def __init__(self, n: int, cfg: TrainConfig, start_step: int, total: int, rank: int, world: int) -> None:
        self.n, self.cfg, self.start, self.total, self.rank, self.world = n, cfg, start_step, total, rank, world

    def __len__(self) -> int:
        return (self.total - self.start) * self.cfg.accumulate

    def __iter__(self) -> Iterator[list[int]]:
        B, A = self.cfg.batch_size, self.cfg.accumulate
        local = B // self.world
        micro = local // A
        for step in range(self.start, self.total):
            idx = stream_indices(self.n, self.cfg.seed, step * B, B)[self.rank * local : (self.rank + 1) * local]
            for a in range(A):
                yield idx[a * micro : (a + 1) * micro]


class Collate:
    """Turns a list of `(raw, label)` items into `(x, mask, x2, mask2, labels)` with the model's adapter."""

    def __init__(self, adapter: Any, pair: bool, labels: bool = True) -> None:
        self.adapter, self.pair, self.labels = adapter, pair, labels

    def __call__(self, items: list[tuple[Any, Any]]) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor]:
        """`labels=False` (pretraining) ignores the labels, which may then be anything (None included)."""
        raws = [r for r, _ in items]
        y = torch.as_tensor([int(lbl) for _, lbl in items] if self.labels else [-1] * len(items), dtype=torch.long)
        if self.pair:
            for r in raws:
                if not (isinstance(r, (tuple, list)) and len(r) == 2):
                    raise ConfigError(f"a pair task's items must be (doc1, doc2) tuples, got {type(r).__name__}")
            x, m = self.adapter([r[0] for r in raws])
            x2, m2 = self.adapter([r[1] for r in raws])
            return x, m, x2, m2, y
        x, m = self.adapter(raws)
        return x, m, None, None, y


def model_for_data(model: str | ModelConfig | nn.Module, data: Any, device: Any = None, **overrides: Any) -> nn.Module:
    """Build (or check) a model for a dataset: its adapter, number of classes and, for pairs, the dual head.

    A preset name or config is adjusted to the data; a ready model is only checked against it.
    """
    from multiseq.models import create_model

    if isinstance(model, nn.Module):
        _check_model_fits(model, data)
        return model.to(device) if device is not None else model
    changes: dict[str, Any] = dict(overrides)
    if getattr(data, "num_classes", None):
        changes.setdefault("num_classes", int(data.num_classes))
    adapter = getattr(data, "adapter", None)
    if isinstance(adapter, AdapterConfig):
        changes.setdefault("adapter", dataclasses.asdict(adapter))
    if getattr(data, "pair", False):
        changes.setdefault("head", {"kind": "dual"})
    built = create_model(model, device=device, **changes)
    _check_model_fits(built, data)
    return built


def class_names(data: Any, num_classes: int) -> list[str]:
    """The data's `label_names` if it has them (one per class), else "0", "1", ..."""
    names = getattr(data, "label_names", None)
    if names is not None and len(names) == num_classes:
        return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


def _check_model_fits(model: nn.Module, data: Any) -> None:
    nc = getattr(data, "num_classes", None)
    if nc and model.config.num_classes != nc:
        raise ConfigError(f"the model predicts {model.config.num_classes} classes but the data has {nc}")
    if getattr(data, "pair", False) != model.is_dual:
        raise ConfigError(
            "the data are document pairs but the model has a single-input head (use head={'kind': 'dual'})"
            if model.is_dual is False
            else "the model has a dual-encoder head but the data are single inputs"
        )


def _forward(model: nn.Module, batch: tuple, device: torch.device) -> tuple[Tensor, Tensor]:
    x, m, x2, m2, y = (t.to(device, non_blocking=True) if t is not None else None for t in batch)
    logits = model(x, m, x2, m2) if x2 is not None else model(x, m)
    return logits, y

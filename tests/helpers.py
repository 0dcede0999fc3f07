"""Shared test utilities: random adapter inputs for any model, and padding checks."""

from __future__ import annotations

import torch

from multiseq.adapters.base import EmbedSpec


def random_inputs(spec: EmbedSpec, batch: int, length: int, generator: torch.Generator | None = None):
    """Random adapter output `(x, mask)` for an embedding spec; the second row is padded when length > 2."""
    g = generator
    if spec.kind == "token":
        x = torch.randint(1, spec.vocab_size, (batch, length), generator=g)
    elif spec.kind == "linear":
        x = torch.randn(batch, length, spec.in_features, generator=g)
    else:
        H, W = spec.img_size
        x = torch.randn(batch, spec.in_chans, H, W, generator=g)
        length = spec.grid[0] * spec.grid[1]
    mask = torch.ones(batch, length, dtype=torch.bool)
    if spec.kind != "patch" and batch > 1 and length > 2:
        mask[1, length // 2 :] = False
        if spec.kind == "token":
            x[1, length // 2 :] = 0
    return x, mask


def short_length(config) -> int:
    """A short length the preset accepts (grids keep their size)."""
    return min(config.adapter.max_length, 48)

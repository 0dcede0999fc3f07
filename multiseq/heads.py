"""Task heads: masked pooling (mean, cls, last, max, meanmax), a classifier, and the dual-encoder head."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def masked_pool(x: Tensor, mask: Tensor, how: str) -> Tensor:
    """Pool `(B, L, D)` over real positions of `mask` `(B, L)` -> `(B, D)`.

    `mean`: average of real positions; `max`: elementwise max; `last`: the last real position; `cls`: position 0;
    `meanmax`: mean and max concatenated, `(B, 2D)`. Rows with no real position pool to zeros.
    """
    if how == "meanmax":
        return torch.cat([masked_pool(x, mask, "mean"), masked_pool(x, mask, "max")], dim=-1)
    m = mask[..., None].to(x.dtype)
    if how == "mean":
        return (x * m).sum(1) / m.sum(1).clamp(min=1.0)
    if how == "max":
        filled = x.masked_fill(~mask[..., None], float("-inf")).amax(1)
        return torch.where(mask.any(1, keepdim=True), filled, torch.zeros_like(filled))
    if how == "last":
        L = mask.shape[1]
        idx = torch.where(mask, torch.arange(L, device=mask.device)[None], -1).amax(1)  # (B,)
        out = x[torch.arange(x.shape[0], device=x.device), idx.clamp(min=0)]
        return out * (idx >= 0)[:, None].to(x.dtype)
    if how == "cls":
        return x[:, 0]
    raise ValueError(f"unknown pooling {how!r}; use mean, cls, last, max or meanmax")


def pooled_width(dim: int, pool: str) -> int:
    """Width of `masked_pool`'s output for a `(B, L, dim)` input."""
    return 2 * dim if pool == "meanmax" else dim


class _PoolingHead(nn.Module):
    """A head that pools the body's `(B, L, dim)` output with `pool` and maps it through `self.net`."""

    def __init__(
        self, dim: int, num_classes: int, pool: str, hidden: int = 0, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        self.pool = pool
        self.net = self._net(dim, pooled_width(dim, pool), num_classes, hidden, dict(device=device, dtype=dtype))

    def _net(self, dim: int, pooled: int, num_classes: int, hidden: int, f: dict[str, Any]) -> nn.Module:
        raise NotImplementedError  # pragma: no cover - abstract


class ClassificationHead(_PoolingHead):
    """Pool then classify. `hidden > 0` inserts a GELU MLP layer."""

    def _net(self, dim: int, pooled: int, num_classes: int, hidden: int, f: dict[str, Any]) -> nn.Module:
        if hidden > 0:
            return nn.Sequential(nn.Linear(pooled, hidden, **f), nn.GELU(), nn.Linear(hidden, num_classes, **f))
        return nn.Linear(pooled, num_classes, **f)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (B, L, D), mask: (B, L) -> logits (B, num_classes)."""
        return self.net(masked_pool(x, mask, self.pool))


class DualEncoderHead(_PoolingHead):
    """Two-document head (LRA Retrieval): pool each document to u, v; MLP on `[u, v, u*v, u-v]` (`hidden` 0: the
    body's width)."""

    def _net(self, dim: int, pooled: int, num_classes: int, hidden: int, f: dict[str, Any]) -> nn.Module:
        hidden = hidden or dim
        return nn.Sequential(nn.Linear(4 * pooled, hidden, **f), nn.GELU(), nn.Linear(hidden, num_classes, **f))

    def forward(self, x1: Tensor, mask1: Tensor, x2: Tensor, mask2: Tensor) -> Tensor:
        """x1, x2: (B, L_i, D); masks (B, L_i) -> logits (B, num_classes)."""
        u, v = masked_pool(x1, mask1, self.pool), masked_pool(x2, mask2, self.pool)
        return self.net(torch.cat([u, v, u * v, u - v], dim=-1))

"""Synthesizer (Tay et al., 2021): attention weights synthesised without query-key dot products (`synthesizer`).

* `dense`: the logits of query i are `W2 relu(W1 x_i)`, one score per key position (up to `max_length`).
* `random`: the logits are a learned (heads, max_length, max_length) matrix, independent of the input
  (`fixed_random=True` freezes it, the paper's fixed variant).

Keys that are padding (or in the future, when causal) are excluded before the softmax. Memory is O(L^2): the
Synthesizer is a comparison point, not a linear-time block.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.registry import register_block
from multiseq.errors import ConfigError, InputError


@register_block("synthesizer")
class Synthesizer(nn.Module):
    """Dense or random synthesised attention over sequences up to `max_length`."""

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 8,
        variant: str = "dense",
        max_length: int = 4096,
        fixed_random: bool = False,
        causal: bool = False,
        dropout: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if variant not in ("dense", "random"):
            raise ConfigError(f"variant must be 'dense' or 'random', got {variant!r}")
        if dim % heads:
            raise ConfigError(f"width {dim} is not divisible by heads={heads}")
        f = dict(device=device, dtype=dtype)
        self.heads, self.variant, self.max_length, self.causal = heads, variant, max_length, causal
        self.value = nn.Linear(dim, dim, **f)
        self.out = nn.Linear(dim, dim, **f)
        self.drop = nn.Dropout(dropout)
        if variant == "dense":
            self.w1 = nn.Linear(dim, dim, **f)
            self.w2 = nn.Linear(dim, heads * max_length, **f)
        else:
            logits = torch.randn(heads, max_length, max_length, **f) * 0.02
            if fixed_random:
                self.register_buffer("logits", logits)
            else:
                self.logits = nn.Parameter(logits)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        B, L, D = x.shape
        if L > self.max_length:
            raise InputError(f"synthesizer was built for max_length={self.max_length}, got a sequence of {L}")
        if self.variant == "dense":
            scores = self.w2(F.relu(self.w1(x)))  # (B, L, H * max_length)
            scores = rearrange(scores, "b i (h j) -> b h i j", h=self.heads)[..., :L]
        else:
            scores = self.logits[:, :L, :L].unsqueeze(0).expand(B, -1, -1, -1)
        allowed = torch.ones(B, 1, L, L, dtype=torch.bool, device=x.device)
        if mask is not None:
            allowed = allowed & mask[:, None, None, :]
        if self.causal:
            allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        any_key = allowed.any(-1, keepdim=True)
        probs = torch.softmax(scores.float().masked_fill(~allowed, float("-inf")).masked_fill(~any_key, 0.0), -1)
        probs = (probs * any_key).to(x.dtype)
        v = rearrange(self.value(x), "b l (h d) -> b h l d", h=self.heads)
        y = rearrange(probs @ v, "b h l d -> b l (h d)")
        return self.drop(self.out(y))

"""Block-Recurrent Transformer cell (Hutchins et al., 2022), registered as `block_recurrent`.

The sequence is processed in blocks of `block` tokens with a recurrent state of `state_size` vectors:

* vertical (tokens): self-attention within the block (causal when `causal`) and cross-attention to the current
  state, combined by a linear projection;
* horizontal (state): self-attention among the state vectors and cross-attention to the block's tokens, followed
  by LSTM-style gates, `state = f * state + i * tanh(update)` with `f = sigmoid(. + bias)` (forget bias 1).

Information flows forward only through the state, so the cell is causal across blocks in both modes; padding
tokens are excluded from every attention and leave the state unchanged. Time O(L * (block + state_size)).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from multiseq.blocks.attention import CrossAttention
from multiseq.blocks.registry import register_block


@register_block("block_recurrent")
class BlockRecurrent(nn.Module):
    """Block-recurrent cell over blocks of `block` tokens with `state_size` recurrent state vectors."""

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 8,
        block: int = 64,
        state_size: int = 16,
        causal: bool = False,
        dropout: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        f = dict(device=device, dtype=dtype)
        self.block, self.causal = block, causal
        self.state0 = nn.Parameter(torch.randn(state_size, dim, **f) * dim**-0.5)
        # Each pair is combined by a linear layer below, so the attentions skip their own output projection.
        self.tok_self, self.tok_cross = (CrossAttention(dim, heads, project_out=False, **f) for _ in range(2))
        self.st_self, self.st_cross = (CrossAttention(dim, heads, project_out=False, **f) for _ in range(2))
        self.tok_out = nn.Linear(2 * dim, dim, **f)
        self.st_update = nn.Linear(2 * dim, dim, **f)
        self.gates = nn.Linear(2 * dim, 2 * dim, **f)
        self.st_norm = nn.LayerNorm(dim, **f)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        B, L, D = x.shape
        kpm = mask if mask is not None else torch.ones(B, L, dtype=torch.bool, device=x.device)
        state = self.state0.expand(B, -1, -1).to(x.dtype)
        outs = []
        for s in range(0, L, self.block):
            xb, mb = x[:, s : s + self.block], kpm[:, s : s + self.block]
            sn = self.st_norm(state)
            y = torch.cat([self.tok_self(xb, xb, mb, causal=self.causal), self.tok_cross(xb, sn, None)], -1)
            outs.append(self.tok_out(y))
            upd = self.st_update(torch.cat([self.st_self(sn, sn, None), self.st_cross(sn, xb, mb)], -1))
            fi = self.gates(torch.cat([sn, upd], -1))
            forget, inp = torch.sigmoid(fi[..., :D] + 1.0), torch.sigmoid(fi[..., D:])
            new = forget * state + inp * torch.tanh(upd)
            # A block without real tokens leaves the state as it was.
            has_real = mb.any(-1)[:, None, None]
            state = torch.where(has_real, new, state)
        return self.drop(torch.cat(outs, dim=1))

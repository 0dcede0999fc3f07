"""Pre-norm residual stack built from a list of registered block names (hybrids are a config line)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from multiseq.blocks import build_block
from multiseq.config import BlockSpec


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def make_norm(kind: str, dim: int, device: Any = None, dtype: Any = None) -> nn.Module:
    if kind == "rms":
        return RMSNorm(dim, device=device, dtype=dtype)
    return nn.LayerNorm(dim, device=device, dtype=dtype)


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(D, mult*D) -> GELU -> Linear(mult*D, D) -> dropout."""

    def __init__(self, dim: int, mult: float, dropout: float, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mult)))
        self.net = nn.Sequential(
            nn.Linear(dim, hidden, device=device, dtype=dtype),
            nn.GELU(),
            nn.Linear(hidden, dim, device=device, dtype=dtype),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Layer(nn.Module):
    """`x + drop(block(norm(x)))`, then `x + ffn(norm(x))`; or `block(x)` for blocks that manage their residual."""

    def __init__(
        self,
        spec: BlockSpec,
        dim: int,
        *,
        ffn_mult: float,
        norm: str,
        dropout: float,
        causal: bool,
        layer_scale: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.block = build_block(spec.name, dim, causal=causal, dropout=dropout, **factory, **spec.options)
        self.own_residual = bool(getattr(self.block, "manages_residual", False))
        self.uses_carry = bool(getattr(self.block, "uses_carry", False))
        self.norm = None if self.own_residual else make_norm(norm, dim, **factory)
        self.drop = nn.Dropout(dropout)
        self.ffn = None
        if ffn_mult > 0 and not self.own_residual:
            self.ffn_norm = make_norm(norm, dim, **factory)
            self.ffn = FeedForward(dim, ffn_mult, dropout, **factory)
        # LayerScale: per-channel gains on the residual branches, starting small (see ModelConfig.layer_scale).
        scaled = layer_scale > 0 and not self.own_residual
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale), **factory)) if scaled else None
        self.ffn_gamma = nn.Parameter(torch.full((dim,), float(layer_scale), **factory)) if scaled and self.ffn else None

    def forward(self, x: Tensor, mask: Tensor, carry: dict | None = None) -> Tensor:
        # Blocks with `uses_carry` (e.g. Luna's packed sequence) pass state to the next such layer via `carry`.
        kwargs = {"carry": carry} if self.uses_carry else {}
        if self.own_residual:
            x = self.block(x, mask, **kwargs)
        else:
            y = self.drop(self.block(self.norm(x), mask, **kwargs))
            x = x + (y * self.gamma.to(y.dtype) if self.gamma is not None else y)
        if self.ffn is not None:
            y = self.ffn(self.ffn_norm(x))
            x = x + (y * self.ffn_gamma.to(y.dtype) if self.ffn_gamma is not None else y)
        # Padded positions stay zero between layers, so no block ever reads stale values there.
        return x * mask[..., None].to(x.dtype)


class Backbone(nn.Module):
    """Residual stack of `Layer`s and a final norm. `(B, L, D), mask (B, L) -> (B, L, D)`."""

    def __init__(
        self,
        layers: tuple[BlockSpec, ...],
        dim: int,
        *,
        ffn_mult: float = 4.0,
        norm: str = "layer",
        dropout: float = 0.0,
        causal: bool = False,
        grad_checkpointing: bool = False,
        layer_scale: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            Layer(
                s, dim, ffn_mult=ffn_mult, norm=norm, dropout=dropout, causal=causal, layer_scale=layer_scale,
                device=device, dtype=dtype,
            )
            for s in layers
        )
        self.final_norm = make_norm(norm, dim, device=device, dtype=dtype)
        self.grad_checkpointing = grad_checkpointing
        carriers = [layer.block for layer in self.layers if layer.uses_carry]
        for i, block in enumerate(carriers):
            # The first starts the carried state, the last has nobody to pass it to.
            block.set_carry_role(first=i == 0, last=i == len(carriers) - 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        carry: dict = {}
        for layer in self.layers:
            if layer.uses_carry:
                x = layer(x, mask, carry)  # state passed between layers is not recomputed by checkpointing
            elif self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, mask, use_reentrant=False)
            else:
                x = layer(x, mask)
        return self.final_norm(x) * mask[..., None].to(x.dtype)

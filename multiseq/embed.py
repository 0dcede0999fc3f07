"""Embeddings: token table, linear features, or timm's ViT `PatchEmbed`; plus positions and an optional CLS."""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.layers import PatchEmbed
from torch import Tensor, nn

from multiseq.adapters.base import EmbedSpec
from multiseq.errors import InputError
from multiseq.kernels import is_tracing


def sinusoidal_positions(L: int, dim: int, device: Any = None, dtype: Any = None) -> Tensor:
    """(L, dim) fixed sine/cosine positions (Vaswani et al.)."""
    pos = torch.arange(L, device=device, dtype=torch.float32)[:, None]
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    angles = pos * freq[None]  # (L, half)
    out = torch.zeros(L, dim, device=device, dtype=torch.float32)
    out[:, 0 : 2 * half : 2] = torch.sin(angles)
    out[:, 1 : 2 * half : 2] = torch.cos(angles)
    return out.to(dtype or torch.float32)


class Embedding(nn.Module):
    """Adapter output -> `(B, L, D)` with positions, and the mask (with CLS prepended when `cls_token`).

    Args:
        spec: the adapter's `EmbedSpec`.
        width: model width D.
        positional: `learned`, `sinusoidal` or `none`.
        max_length: length of the learned position table (the adapter's max_length).
        cls_token: prepend a learned CLS vector (for `cls` pooling).
    """

    def __init__(
        self,
        spec: EmbedSpec,
        width: int,
        positional: str = "learned",
        max_length: int = 1024,
        cls_token: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.spec, self.width, self.positional = spec, width, positional
        self.max_length = max_length + int(cls_token)
        factory = dict(device=device, dtype=dtype)
        if spec.kind == "token":
            self.proj: nn.Module = nn.Embedding(spec.vocab_size, width, **factory)
        elif spec.kind == "linear":
            self.proj = nn.Linear(spec.in_features, width, **factory)
        elif spec.kind == "patch":
            self.proj = PatchEmbed(
                img_size=spec.img_size,
                patch_size=spec.patch_size,
                in_chans=spec.in_chans,
                embed_dim=width,
                strict_img_size=True,
                dynamic_img_pad=spec.dynamic_pad,
            ).to(**factory)
        else:
            raise ValueError(f"unknown embedding kind {spec.kind!r}")
        self.cls = nn.Parameter(torch.randn(1, 1, width, **factory) * 0.02) if cls_token else None
        if positional == "learned":
            self.pos = nn.Parameter(torch.randn(1, self.max_length, width, **factory) * 0.02)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, replace: Tensor | None = None, mask_token: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """x: ids (B, L), features (B, L, C) or images (B, C, H, W); mask (B, L) -> ((B, L', D), (B, L') bool).

        `replace` (B, L) bool puts `mask_token` (D,) in place of the input's embedding at those positions (positions
        are still added): the masked-modelling objective of self-pretraining.
        """
        kind = self.spec.kind
        if kind == "token":
            if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
                raise InputError(f"token ids must be an integer tensor (B, L), got {x.dtype}")
            if x.dim() != 2:
                raise InputError(f"token ids must have shape (B, L), got {tuple(x.shape)}")
            # A data-dependent check: eager only. Under torch.compile / torch.export it would break the graph (or
            # fail to trace), so it is skipped there; out-of-range ids then fail inside the embedding lookup.
            if not is_tracing() and x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.spec.vocab_size):
                raise InputError(
                    f"token ids must lie in [0, {self.spec.vocab_size}), got range [{int(x.min())}, {int(x.max())}]"
                )
            h = self.proj(x.long())
        elif kind == "linear":
            if x.dim() != 3 or x.shape[-1] != self.spec.in_features or not x.is_floating_point():
                raise InputError(
                    f"features must be float (B, L, {self.spec.in_features}), got {x.dtype} {tuple(x.shape)}"
                )
            _check_finite(x)
            h = self.proj(x.to(self.proj.weight.dtype))
        else:
            if x.dim() != 4 or not x.is_floating_point():
                raise InputError(f"images must be float (B, C, H, W), got {x.dtype} {tuple(x.shape)}")
            _check_finite(x)
            h = self.proj(x.to(self.proj.proj.weight.dtype))  # (B, N, D)
        B, L = h.shape[:2]
        if replace is not None:
            if replace.shape != (B, L) or mask_token is None:
                raise InputError(f"replace must be bool (B, L) = {(B, L)} with a mask_token, got {tuple(replace.shape)}")
            h = torch.where(replace[..., None], mask_token.to(h.dtype), h)
        if mask is None:
            mask = torch.ones(B, L, dtype=torch.bool, device=h.device)
        if mask.shape != (B, L) or mask.dtype != torch.bool:
            raise InputError(f"mask must be bool (B, L) = {(B, L)}, got {mask.dtype} {tuple(mask.shape)}")
        if self.cls is not None:
            h = torch.cat([self.cls.expand(B, -1, -1).to(h.dtype), h], dim=1)
            mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
            L += 1
        if self.positional == "learned":
            if L > self.max_length:
                raise InputError(
                    f"sequence of length {L} exceeds the learned position table ({self.max_length}); raise "
                    f"adapter.max_length, or use positional='sinusoidal' or 'none'"
                )
            h = h + self.pos[:, :L].to(h.dtype)
        elif self.positional == "sinusoidal":
            h = h + sinusoidal_positions(L, self.width, h.device, h.dtype)[None]
        return h * mask[..., None].to(h.dtype), mask


def _check_finite(x: Tensor) -> None:
    if is_tracing():
        return
    if not torch.isfinite(x).all():
        raise InputError("input contains NaN or Inf; clean or impute the values before the model")

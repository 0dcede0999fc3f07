"""Early downsampling: a strided 1-D convolution between the embedding and the blocks.

Byte, pixel and patch sequences are long and their single positions carry little (one byte, one pixel); merging
`stride` neighbours before the first block shortens every block's sequence by that factor, which is where most of
the time goes. The convolution sees `kernel` positions centred on each `stride` window, so neighbouring windows
overlap by `(kernel - stride) / 2` on each side.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseq.config import StemConfig


def downsample_mask(mask: Tensor, stride: int) -> Tensor:
    """(B, L) bool -> (B, ceil(L / stride)) bool: a window is real when any of its positions is."""
    B, L = mask.shape
    Lc = -(-L // stride)
    padded = F.pad(mask, (0, Lc * stride - L))
    return padded.view(B, Lc, stride).any(-1)


class ConvStem(nn.Module):
    """`(B, L, E)`, mask `(B, L)` -> `(B, ceil(L / stride), D)`, mask `(B, ceil(L / stride))`.

    Padded inputs are zeroed first, so real outputs never depend on padded values. With `causal=True` the window of
    output j ends at the last input of its own stride window (left padding only), so nothing from a later window
    enters.

    Args:
        config: the `StemConfig` (stride, kernel).
        in_dim: embedding width E.
        out_dim: model width D.
        causal: see above.
    """

    def __init__(
        self, config: StemConfig, in_dim: int, out_dim: int, causal: bool = False, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        self.stride, self.kernel, self.causal = config.stride, config.kernel_size, causal
        self.conv = nn.Conv1d(in_dim, out_dim, self.kernel, stride=self.stride, device=device, dtype=dtype)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        B, L, _ = x.shape
        Lc = -(-L // self.stride)
        extra = self.kernel - self.stride
        left, right = (extra, 0) if self.causal else (extra // 2, extra // 2)
        h = (x * mask[..., None].to(x.dtype)).transpose(1, 2)  # (B, E, L)
        h = F.pad(h, (left, right + Lc * self.stride - L))
        h = self.conv(h).transpose(1, 2)  # (B, Lc, D)
        m = downsample_mask(mask, self.stride)
        return F.gelu(h) * m[..., None].to(h.dtype), m

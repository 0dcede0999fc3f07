"""Image -> pixel sequence (sequential CIFAR, LRA Image, Pathfinder / Path-X)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiseq.adapters.base import Adapter, EmbedSpec, register_adapter
from multiseq.adapters.images import resize, to_float_array, to_gray, to_rgb
from multiseq.errors import ConfigError, InputError


def lra_gray_tokens(image: Any) -> np.ndarray:
    """LRA's grayscale rule: `g = 0.2989 R + 0.5870 G + 0.1140 B` on values / 255, back by `int(g * 255.5)`.

    Returns (H, W) uint8 tokens 0..255.
    """
    g = to_gray(to_float_array(image)).astype(np.float64)
    return np.clip(np.floor(g * 255.5), 0, 255).astype(np.uint8)


@register_adapter("pixels")
class PixelAdapter(Adapter):
    """Image(s) -> a sequence of pixels, row-major.

    Args:
        max_length: H * W (or larger).
        image_size: (H, W). Images of another size are resized to it when `resize=True`, else rejected.
        color: `gray` (LRA rule) or `rgb`.
        as_tokens: True -> ids `(B, H*W)` in 0..255 (gray only; embedded with a token table);
            False -> features `(B, H*W, C)` normalised with `mean` / `std`.
        mean, std: per-channel normalisation of features.
        resize: resize images whose size differs from `image_size`.
    """

    def __init__(
        self,
        max_length: int = 1024,
        image_size: Sequence[int] = (32, 32),
        color: str = "gray",
        as_tokens: bool = True,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
        resize: bool = False,
    ) -> None:
        super().__init__(max_length)
        self.image_size = _size(image_size)
        if color not in ("gray", "rgb"):
            raise ConfigError(f"color must be 'gray' or 'rgb', got {color!r}")
        if as_tokens and color != "gray":
            raise ConfigError("as_tokens=True needs color='gray'; RGB pixels are fed as features (as_tokens=False)")
        H, W = self.image_size
        if H * W > max_length:
            raise ConfigError(f"image_size {H}x{W} gives {H * W} pixels, more than max_length={max_length}")
        self.color, self.as_tokens, self.resize = color, as_tokens, resize
        C = 1 if color == "gray" else 3
        self.mean = torch.as_tensor(mean, dtype=torch.float32).expand(C).clone()
        self.std = torch.as_tensor(std, dtype=torch.float32).expand(C).clone()
        if (self.std <= 0).any():
            raise ConfigError(f"std must be positive, got {std!r}")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def embed_spec(self) -> EmbedSpec:
        if self.as_tokens:
            return EmbedSpec("token", vocab_size=256, grid=self.image_size)
        return EmbedSpec("linear", in_features=self.channels, grid=self.image_size)

    def _one(self, image: Any) -> np.ndarray:
        a = to_float_array(image)
        if a.shape[:2] != self.image_size:
            if not self.resize:
                raise InputError(
                    f"image is {a.shape[0]}x{a.shape[1]} but this adapter expects {self.image_size[0]}x"
                    f"{self.image_size[1]}; resize it, or build the adapter with resize=True"
                )
            a = resize(a, self.image_size)
        if self.as_tokens:
            g = to_gray(a).astype(np.float64)
            return np.clip(np.floor(g * 255.5), 0, 255).astype(np.int64)
        return to_gray(a)[..., None] if self.color == "gray" else to_rgb(a)

    def __call__(self, inputs: Any) -> tuple[Tensor, Tensor]:
        """One image or a list -> tokens (B, H*W) int64 or features (B, H*W, C) float32, and an all-True mask."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise InputError("no images given")
        arrays = [self._one(im) for im in items]
        x = torch.from_numpy(np.stack(arrays))
        B = x.shape[0]
        if self.as_tokens:
            x = x.reshape(B, -1)
        else:
            x = ((x.reshape(B, -1, self.channels) - self.mean) / self.std).float()
        return x, torch.ones(B, x.shape[1], dtype=torch.bool)


def _size(size: Any) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
        raise ConfigError(f"image_size must be (H, W) positive ints, got {size!r}")
    return size  # type: ignore[return-value]

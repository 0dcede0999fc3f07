"""Image -> ViT patches. The learned patch projection is timm's `PatchEmbed` (built by the model's embedding);
this adapter normalises images to a `(B, C, H, W)` batch and gives the patch mask."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiseq.adapters.base import Adapter, EmbedSpec, register_adapter
from multiseq.adapters.images import resize, to_float_array, to_gray, to_rgb
from multiseq.adapters.pixels import _size
from multiseq.errors import ConfigError, InputError

POLICIES = ("pad", "resize", "error")


@register_adapter("patches")
class PatchAdapter(Adapter):
    """Image(s) -> `(B, C, H, W)` float batch for timm's `PatchEmbed`, and a `(B, N)` all-True patch mask.

    Args:
        max_length: at least the number of patches N.
        image_size: (H, W) every image is brought to (images of another size are resized to it).
        patch_size: side of a square patch.
        color: `rgb` or `gray`.
        policy: what to do when `image_size` is not a multiple of `patch_size`:
            `pad` zero-pads bottom/right to the next multiple (timm's dynamic padding, N = ceil(H/p) * ceil(W/p)),
            `resize` resizes images to the nearest multiple, `error` refuses the configuration.
        mean, std: per-channel normalisation.
    """

    def __init__(
        self,
        max_length: int = 1024,
        image_size: Sequence[int] = (32, 32),
        patch_size: int = 4,
        color: str = "rgb",
        policy: str = "pad",
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
    ) -> None:
        super().__init__(max_length)
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ConfigError(f"patch_size must be an int >= 1, got {patch_size!r}")
        if policy not in POLICIES:
            raise ConfigError(f"policy must be one of {POLICIES}, got {policy!r}")
        if color not in ("gray", "rgb"):
            raise ConfigError(f"color must be 'gray' or 'rgb', got {color!r}")
        H, W = _size(image_size)
        if H % patch_size or W % patch_size:
            if policy == "error":
                raise ConfigError(
                    f"image_size {H}x{W} is not a multiple of patch_size {patch_size}; "
                    f"use policy='pad' or 'resize', or another size"
                )
            if policy == "resize":
                H = max(patch_size, round(H / patch_size) * patch_size)
                W = max(patch_size, round(W / patch_size) * patch_size)
        self.image_size, self.patch_size, self.color, self.policy = (H, W), patch_size, color, policy
        self.grid = (math.ceil(H / patch_size), math.ceil(W / patch_size))
        if self.num_patches > max_length:
            raise ConfigError(f"{self.num_patches} patches exceed max_length={max_length}")
        C = self.channels
        self.mean = torch.as_tensor(mean, dtype=torch.float32).expand(C).clone().view(C, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).expand(C).clone().view(C, 1, 1)

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def embed_spec(self) -> EmbedSpec:
        return EmbedSpec(
            "patch",
            img_size=self.image_size,
            patch_size=self.patch_size,
            in_chans=self.channels,
            dynamic_pad=self.policy == "pad",
            grid=self.grid,
        )

    def _one(self, image: Any) -> np.ndarray:
        a = resize(to_float_array(image), self.image_size)
        a = to_gray(a)[..., None] if self.color == "gray" else to_rgb(a)
        return np.moveaxis(a, -1, 0)

    def __call__(self, inputs: Any) -> tuple[Tensor, Tensor]:
        """One image or a list -> images (B, C, H, W) float32 and mask (B, N) bool (all True)."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise InputError("no images given")
        x = torch.from_numpy(np.stack([self._one(im) for im in items])).float()
        x = (x - self.mean) / self.std
        return x, torch.ones(x.shape[0], self.num_patches, dtype=torch.bool)

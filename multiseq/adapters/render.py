"""Rendered text: text -> PIXEL-style strip (the top-level `renderers` package) -> a sequence of patches.

Two views of the same render:

* `sequence` (default): patch features `(B, L, P*P*C)` (each 16x16 patch flattened row-major, 256 values in gray)
  with a `(B, L)` mask covering the text patches and the black end patch; fed to any block through a linear
  embedding (equal to a 16x16 convolutional patch embedding of the strip).
* `square`: PIXEL's squarified image `(B, C, 368, 368)` for ViT-style patch embeddings (timm `PatchEmbed`, patch
  16, a 23 x 23 grid whose row-major order is the strip's patch order) with the same `(B, 529)` mask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from multiseq.adapters.base import Adapter, EmbedSpec, as_batch, register_adapter
from multiseq.errors import ConfigError, InputError
from renderers import RenderError, RenderResult, TextRenderer, load_config, squarify

VIEWS = ("sequence", "square")
RENDERINGS = ("continuous", "words", "bigrams")
PAD_TO = ("longest", "max_length")


@register_adapter("render")
class RenderAdapter(Adapter):
    """Texts -> rendered patches.

    Inputs: one item or a list of items; an item is a `str`, a `(str, str)` pair (separator patch between),
    a list of words (each word starts on a patch boundary), or a `renderers.RenderResult` rendered elsewhere
    (e.g. in DataLoader workers).

    Args:
        max_length: patches per strip (the renderer's `max_seq_length`; 529 for PIXEL).
        config: renderer configuration: a bundled name (`pixel`, `pixel_rgb`) or a JSON path.
        overrides: further `RenderConfig` fields (e.g. `{"font_size": 9}`).
        view: `sequence` (patch features) or `square` (squarified image; `max_length` must be a square number).
        pad_to: `sequence` view only: pad to the longest render in the batch (`longest`) or to `max_length`.
        rendering: how a `str` text is drawn: `continuous` (PIXEL: one run of text, a word may start anywhere in
            a patch) or `words` (split on whitespace, every word starts on a patch boundary, so a word always
            gives the same patches; models trained from scratch learn from this much faster) or `bigrams` (two
            grapheme clusters per patch, each pair centred in its patch, as in Lotz et al. 2023; texts and pairs).
            Word lists are drawn word by word; pairs follow `continuous` or `bigrams`.
        mean, std: normalisation of pixel values scaled to [0, 1] (white = 1).
        errors: the renderer's handling of lone surrogates (`strict` raises, `replace` draws U+FFFD).
    """

    def __init__(
        self,
        max_length: int = 529,
        config: str = "pixel",
        overrides: dict[str, Any] | None = None,
        view: str = "sequence",
        pad_to: str = "longest",
        mean: float = 0.5,
        std: float = 0.5,
        errors: str = "strict",
        rendering: str = "continuous",
    ) -> None:
        super().__init__(max_length)
        if rendering not in RENDERINGS:
            raise ConfigError(f"rendering must be one of {RENDERINGS}, got {rendering!r}")
        if view not in VIEWS:
            raise ConfigError(f"view must be one of {VIEWS}, got {view!r}")
        if pad_to not in PAD_TO:
            raise ConfigError(f"pad_to must be one of {PAD_TO}, got {pad_to!r}")
        if not std > 0:
            raise ConfigError(f"std must be positive, got {std!r}")
        try:
            self.render_config = load_config(config, **{**(overrides or {}), "max_seq_length": max_length})
        except RenderError as e:
            raise ConfigError(f"render adapter: {e}") from None
        if view == "square" and math.isqrt(max_length) ** 2 != max_length:
            raise ConfigError(
                f"view='square' needs a square number of patches (529 = 23 x 23 for PIXEL), got max_length={max_length}"
            )
        self.view, self.pad_to, self.mean, self.std, self.errors = view, pad_to, float(mean), float(std), errors
        self.rendering = rendering
        self._renderer: TextRenderer | None = None

    @property
    def renderer(self) -> TextRenderer:
        """The text renderer, built on first use (fonts load then, not when a model is constructed)."""
        if self._renderer is None:
            self._renderer = TextRenderer(self.render_config, errors=self.errors)
        return self._renderer

    @property
    def channels(self) -> int:
        return 3 if self.render_config.rgb else 1

    @property
    def patch_size(self) -> int:
        return self.render_config.pixels_per_patch

    def embed_spec(self) -> EmbedSpec:
        if self.view == "square":
            side = math.isqrt(self.max_length)
            return EmbedSpec(
                "patch",
                img_size=(side * self.patch_size, side * self.patch_size),
                patch_size=self.patch_size,
                in_chans=self.channels,
                grid=(side, side),
            )
        return EmbedSpec("linear", in_features=self.render_config.patch_features)

    def render(self, item: Any) -> RenderResult:
        """One item -> `RenderResult`; errors name what was wrong."""
        if isinstance(item, RenderResult):
            expected = self.render_config.height, self.render_config.width
            if item.pixels.shape[:2] != expected or (item.pixels.ndim == 3) != self.render_config.rgb:
                raise InputError(
                    f"a pre-rendered input has pixels of shape {item.pixels.shape}, but this adapter renders "
                    f"{expected}{' x 3' if self.render_config.rgb else ''}"
                )
            return item
        if self.rendering == "words" and isinstance(item, str):
            words = item.split()
            item = words if words else item  # an empty or blank text keeps the renderer's own error
        try:
            if self.rendering == "bigrams" and isinstance(item, (str, tuple)):
                return self.renderer.render(item, rendering="bigrams")
            return self.renderer.render(item)
        except RenderError as e:
            raise InputError(f"cannot render input: {e}") from None

    def _normalise(self, pixels: np.ndarray) -> Tensor:
        t = torch.from_numpy(pixels).float().div_(255.0)
        return t.sub_(self.mean).div_(self.std)

    def __call__(self, inputs: Any) -> tuple[Tensor, Tensor]:
        """Texts -> `(x, mask)`.

        Returns:
            `sequence`: features `(B, L, P*P*C)` float32 and mask `(B, L)` bool, L = longest render or max_length;
            `square`: images `(B, C, S, S)` float32 (S = P * sqrt(max_length)) and mask `(B, max_length)` bool.
        """
        items = _as_items(inputs)
        results = [self.render(item) for item in items]
        masks = torch.from_numpy(np.stack([r.mask for r in results]))
        P = self.patch_size
        if self.view == "square":
            imgs = np.stack([squarify(r.pixels, P) for r in results])  # (B, S, S[, 3])
            x = self._normalise(imgs)
            x = rearrange(x, "b h w c -> b c h w") if x.dim() == 4 else x[:, None]
            return x.contiguous(), masks
        L = self.max_length if self.pad_to == "max_length" else max(r.num_text_patches + 1 for r in results)
        strips = np.stack([r.pixels[:, : L * P] for r in results])  # (B, P, L*P[, 3])
        x = self._normalise(strips)
        if x.dim() == 4:
            x = rearrange(x, "b h (n w) c -> b n (h w c)", w=P)
        else:
            x = rearrange(x, "b h (n w) -> b n (h w)", w=P)
        return x.contiguous(), masks[:, :L].contiguous()


def _as_items(inputs: Any) -> list[Any]:
    """One item or a batch -> list of items. A list of str is a batch of texts; word lists go inside a batch."""
    items, _ = as_batch(inputs, (str, tuple, RenderResult), InputError, "the render adapter takes a text, a (text, "
                        "text) pair, a list of words inside a batch, or a list of these")
    if not items:
        raise InputError("no texts given")
    return items

"""The model: adapter (data side) + embedding + backbone + head, all described by one `ModelConfig`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from multiseq.adapters import build_adapter
from multiseq.backbone import Backbone
from multiseq.config import ModelConfig
from multiseq.embed import Embedding
from multiseq.errors import InputError
from multiseq.heads import ClassificationHead, DualEncoderHead, masked_pool, pooled_width
from multiseq.stem import ConvStem


class PoolHead(nn.Module):
    """The head of a feature extractor (`num_classes=0`): masked pooling only, `(B, L, D)` -> `(B, pooled width)`."""

    def __init__(self, pool: str) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return masked_pool(x, mask, self.pool)


class SequenceModel(nn.Module):
    """`raw -> adapter -> (x, mask) -> embed -> backbone -> head -> logits`.

    Call with adapter output: `model(x, mask)` -> `(B, num_classes)`; for a dual-encoder head,
    `model(x, mask, x2, mask2)`. `model.encode(raw)` runs the adapter; `model.predict(raw)` does everything.

    timm conventions: `forward_features` / `forward_head` / `reset_classifier` / `num_features`; with
    `num_classes=0` (in the config, `create_model(..., num_classes=0)` or `reset_classifier(0)`) the head only pools
    and the model returns features `(B, head_features)` (`head_features` = D, or 2D for `meanmax` pooling).

    Empty input: a batch of 0 gives `(0, num_classes)` logits (`predict([])` gives `(0,)`); a sequence of length 0
    is treated as one padding position, i.e. exactly like an all-padding row (finite logits of the pooled zeros).
    """

    def __init__(self, config: ModelConfig, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.config = config
        self.adapter = build_adapter(config.adapter)
        f = dict(device=device, dtype=dtype)
        stem = config.stem
        embed_width = (stem.width or config.width) if stem.stride > 1 else config.width
        self.embed = Embedding(
            self.adapter.embed_spec(),
            embed_width,
            positional=config.positional,
            max_length=config.adapter.max_length,
            cls_token=config.head.pool == "cls",
            **f,
        )
        self.stem = ConvStem(stem, embed_width, config.width, causal=config.causal, **f) if stem.stride > 1 else None
        self.backbone = Backbone(
            config.layers,
            config.width,
            ffn_mult=config.ffn_mult,
            norm=config.norm,
            dropout=config.dropout,
            causal=config.causal,
            grad_checkpointing=config.grad_checkpointing,
            layer_scale=config.layer_scale,
            **f,
        )
        self.head = self._make_head(config.num_classes, **f)

    def _make_head(self, num_classes: int, device: Any = None, dtype: Any = None) -> nn.Module:
        config = self.config
        if num_classes == 0:
            return PoolHead(config.head.pool)
        head_cls = DualEncoderHead if config.head.kind == "dual" else ClassificationHead
        hidden = config.head.hidden or (config.width if config.head.kind == "mlp" else 0)
        return head_cls(config.width, num_classes, config.head.pool, hidden, device=device, dtype=dtype)

    @property
    def num_features(self) -> int:
        """Width D of the backbone features (timm's name)."""
        return self.config.width

    @property
    def head_features(self) -> int:
        """Width of the pooled features the classifier reads (the output width when `num_classes=0`)."""
        return pooled_width(self.config.width, self.config.head.pool)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh, randomly initialised head for `num_classes` classes (the body is kept); the config follows.

        `num_classes=0` turns the model into a feature extractor (the head only pools)."""
        p = next(self.backbone.parameters())
        self.config = self.config.replace(num_classes=num_classes)
        self.head = self._make_head(num_classes, device=p.device, dtype=p.dtype)

    @property
    def is_dual(self) -> bool:
        return self.config.head.kind == "dual"

    def features(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Adapter output -> backbone features `(B, L', D)` and the mask `(B, L')` they are valid on.

        `L' = ceil(L / stem.stride)` (plus one with a CLS token). A length-0 input (ids or features) becomes one
        padding position, so it is handled as an all-padding row.
        """
        if x.dim() in (2, 3) and x.shape[1] == 0 and self.embed.spec.kind != "patch":
            x = x.new_zeros(x.shape[0], 1, *x.shape[2:])
            mask = torch.zeros(x.shape[0], 1, dtype=torch.bool, device=x.device)
        h, mask = self.embed(x, mask)
        return self.body(h, mask)

    def body(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Embedded sequence `(B, L, E)`, mask `(B, L)` -> stem -> blocks -> `(B, L', D)`, mask `(B, L')`."""
        if self.stem is not None:
            h, mask = self.stem(h, mask)
        return self.backbone(h, mask), mask

    forward_features = features

    def forward_head(self, h: Tensor, mask: Tensor) -> Tensor:
        """Features `(B, L', D)` and their mask -> logits `(B, num_classes)` (single-input heads)."""
        return self.head(h, mask)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, x2: Tensor | None = None, mask2: Tensor | None = None
    ) -> Tensor:
        """Logits `(B, num_classes)`."""
        h, m = self.features(x, mask)
        if self.is_dual:
            if x2 is None:
                raise InputError("this model has a dual-encoder head: call it with two documents, model(x, m, x2, m2)")
            h2, m2 = self.features(x2, mask2)
            return self.head(h, m, h2, m2)
        if x2 is not None:
            raise InputError("this model has a single-input head; x2 is only for dual-encoder models")
        return self.head(h, m)

    def encode(self, raw: Any) -> tuple[Tensor, Tensor]:
        """Raw inputs (texts, images, ...) -> adapter output `(x, mask)` on the model's device."""
        x, mask = self.adapter(raw)
        device = next(self.parameters()).device
        return x.to(device), mask.to(device)

    @torch.no_grad()
    def predict_proba(self, raw: Any, raw2: Any = None) -> Tensor:
        """Raw inputs -> class probabilities `(B, num_classes)` (eval mode, no grad); an empty list gives `(0, C)`."""
        if self.num_classes == 0:
            raise InputError(
                "this model is a feature extractor (num_classes=0) and has no classes; call model(x, mask) for "
                "pooled features, or reset_classifier(n) for a classifier"
            )
        if _is_empty_batch(raw) and (not self.is_dual or _is_empty_batch(raw2)):
            return torch.zeros(0, self.num_classes)
        was_training = self.training
        self.eval()
        try:
            x, m = self.encode(raw)
            if self.is_dual:
                x2, m2 = self.encode(raw2)
                logits = self(x, m, x2, m2)
            else:
                logits = self(x, m)
            return logits.float().softmax(-1)
        finally:
            self.train(was_training)

    def predict(self, raw: Any, raw2: Any = None) -> Tensor:
        """Raw inputs -> predicted class ids `(B,)`."""
        return self.predict_proba(raw, raw2).argmax(-1)


def _is_empty_batch(raw: Any) -> bool:
    """An empty list/tuple of inputs, or a 4-d image batch array/tensor with 0 items."""
    if isinstance(raw, (list, tuple)):
        return len(raw) == 0
    shape = getattr(raw, "shape", None)
    return shape is not None and len(shape) == 4 and shape[0] == 0

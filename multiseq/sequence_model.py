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
from multiseq.heads import ClassificationHead, DualEncoderHead


class SequenceModel(nn.Module):
    """`raw -> adapter -> (x, mask) -> embed -> backbone -> head -> logits`.

    Call with adapter output: `model(x, mask)` -> `(B, num_classes)`; for a dual-encoder head,
    `model(x, mask, x2, mask2)`. `model.encode(raw)` runs the adapter; `model.predict(raw)` does everything.
    """

    def __init__(self, config: ModelConfig, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.config = config
        self.adapter = build_adapter(config.adapter)
        f = dict(device=device, dtype=dtype)
        self.embed = Embedding(
            self.adapter.embed_spec(),
            config.width,
            positional=config.positional,
            max_length=config.adapter.max_length,
            cls_token=config.head.pool == "cls",
            **f,
        )
        self.backbone = Backbone(
            config.layers,
            config.width,
            ffn_mult=config.ffn_mult,
            norm=config.norm,
            dropout=config.dropout,
            causal=config.causal,
            grad_checkpointing=config.grad_checkpointing,
            **f,
        )
        head_cls = DualEncoderHead if config.head.kind == "dual" else ClassificationHead
        hidden = config.head.hidden or (config.width if config.head.kind == "mlp" else 0)
        self.head = head_cls(config.width, config.num_classes, config.head.pool, hidden, **f)

    @property
    def is_dual(self) -> bool:
        return self.config.head.kind == "dual"

    def features(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Adapter output -> backbone features `(B, L, D)` and the mask `(B, L)` they are valid on."""
        h, mask = self.embed(x, mask)
        return self.backbone(h, mask), mask

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
        """Raw inputs -> class probabilities `(B, num_classes)` (eval mode, no grad)."""
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

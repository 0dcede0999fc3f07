"""Self-pretraining objectives: what a model learns from the task's own inputs before it sees a label.

Amos et al. ("Never Train from Scratch", ICLR 2024) pretrain every long-sequence model with a denoising objective on
the task's training inputs, then fine-tune; `SelfPretraining` is that stage for any `SequenceModel`:

* **masked** (bidirectional models): spans of the embedded sequence are replaced by a learned mask vector (positions
  are kept), and a linear head reconstructs what was there, scored on masked real positions only. Token inputs
  (bytes, ListOps) are predicted as ids (cross-entropy); pixels, rendered patches and image patches as values,
  MAE-style, each target normalised by its own mean and variance (mean squared error).
* **causal** (models with `causal=True`): nothing is masked; the features at each position predict the next one,
  so the objective never asks a position about its own future input.

With a stem (`StemConfig.stride = s`), one backbone position covers `s` inputs: masking takes whole stem windows, and
each position predicts all `s` inputs of its window (or, causal, of the next window).
The reconstruction head and the mask vector belong to the pretraining wrapper; fine-tuning keeps `model` (embedding,
stem, blocks) and gives it a fresh task head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.errors import ConfigError

OBJECTIVES = ("auto", "masked", "causal")
# Default masking ratio and span (in stem windows) per adapter kind; pixel sequences mask half-rows of 16 pixels.
MASK_DEFAULTS: dict[str, tuple[float, int]] = {
    "bytes": (0.15, 1),
    "listops": (0.10, 1),
    "render": (0.25, 2),
    "pixels": (0.5, 16),
    "patches": (0.5, 1),
}


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of the self-pretraining objective.

    Attributes:
        objective: `masked`, `causal`, or `auto` (causal for causal models, else masked).
        mask_ratio: fraction of real stem windows masked; None takes the adapter's default (15% bytes, 10%
            ListOps, 25% rendered text, 50% pixels and image patches).
        span: masked windows come in runs of this many (aligned to a random offset per batch); None takes the
            adapter's default (1; 2 for rendered text; 16 pixels for pixel sequences).
        normalize_targets: normalise each reconstructed window by its own mean and std (MAE); only for value
            targets with at least 4 values per window.
    """

    objective: str = "auto"
    mask_ratio: float | None = None
    span: int | None = None
    normalize_targets: bool = True

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.mask_ratio is not None and not (isinstance(self.mask_ratio, (int, float)) and 0 < self.mask_ratio < 1):
            raise ConfigError(f"mask_ratio must lie in (0, 1), got {self.mask_ratio!r}")
        if self.span is not None and not (isinstance(self.span, int) and self.span >= 1):
            raise ConfigError(f"span must be an int >= 1, got {self.span!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "mask_ratio": self.mask_ratio, "span": self.span,
                "normalize_targets": self.normalize_targets}


def span_mask(real: Tensor, ratio: float, span: int, generator: torch.Generator | None = None) -> Tensor:
    """Choose masked windows: runs of `span` windows, each run masked with probability `ratio`.

    Args:
        real: (B, W) bool, windows holding at least one real input.
        ratio, span: see `PretrainConfig`.
    Returns:
        (B, W) bool, a subset of `real`; every row with a real window has at least one masked window.
    """
    B, W = real.shape
    dev = real.device
    offset = int(torch.randint(span, (1,), generator=generator)) if span > 1 else 0
    runs = -(-(W + offset) // span)
    pick = torch.rand(B, runs, generator=generator).to(dev) < ratio  # (B, runs)
    chosen = pick.repeat_interleave(span, dim=1)[:, offset : offset + W] & real
    # A row the draw left empty gets one real window, so every row contributes to the loss.
    empty = real.any(1) & ~chosen.any(1)
    if empty.any():
        scores = torch.rand(B, W, generator=generator).to(dev).masked_fill(~real, -1.0)
        first = F.one_hot(scores.argmax(1), W).bool()
        chosen = chosen | (first & empty[:, None])
    return chosen


class SelfPretraining(nn.Module):
    """A `SequenceModel` with a reconstruction head: `loss, stats = module(x, mask)`.

    Args:
        model: the `SequenceModel` to pretrain; its body (embedding, stem, blocks) is trained in place.
        config: a `PretrainConfig`.
    """

    def __init__(self, model: nn.Module, config: PretrainConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.config = config = config or PretrainConfig()
        mc = model.config
        self.causal = config.objective == "causal" or (config.objective == "auto" and mc.causal)
        if config.objective == "masked" and mc.causal:
            raise ConfigError("a causal model cannot be pretrained with the masked objective; use causal (or auto)")
        if self.causal and not mc.causal:
            raise ConfigError("the causal objective needs a causal model (causal=True); use masked (or auto)")
        ratio, span = MASK_DEFAULTS.get(mc.adapter.kind, (0.15, 1))
        self.ratio = config.mask_ratio if config.mask_ratio is not None else ratio
        self.stride = mc.stem.stride
        default_span = max(1, span // self.stride) if mc.adapter.kind == "pixels" else span
        self.span = config.span if config.span is not None else default_span
        spec = model.embed.spec
        self.has_cls = model.embed.cls is not None
        # Token ids are classified unless they are pixel intensities (a grid), which are values like any image.
        self.classify = spec.kind == "token" and spec.grid is None
        if self.classify:
            self.out_per_input = spec.vocab_size
        elif spec.kind == "token":
            self.out_per_input = 1
        elif spec.kind == "linear":
            self.out_per_input = spec.in_features
        else:
            self.out_per_input = spec.patch_size * spec.patch_size * spec.in_chans
        p = next(model.parameters())
        width = model.embed.width
        self.mask_token = nn.Parameter(torch.zeros(width, device=p.device, dtype=p.dtype))
        nn.init.normal_(self.mask_token, std=0.02)
        self.recon = nn.Linear(mc.width, self.stride * self.out_per_input, device=p.device, dtype=p.dtype)

    def targets(self, x: Tensor) -> Tensor:
        """What is reconstructed at each input position: ids `(B, L)` or values `(B, L, K)`."""
        spec = self.model.embed.spec
        if self.classify:
            return x.long()
        if spec.kind == "token":
            return x.float()[..., None] / 255.0
        if spec.kind == "linear":
            return x.float()
        P = spec.patch_size
        H, W = x.shape[-2:]
        x = F.pad(x.float(), (0, (-W) % P, 0, (-H) % P))  # as PatchEmbed's dynamic padding
        return rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=P, p2=P)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """x, mask: adapter output -> (scalar loss, {"count": scored inputs, "correct": token hits or 0})."""
        target = self.targets(x)
        real_in = mask if mask is not None else torch.ones(target.shape[:2], dtype=torch.bool, device=x.device)
        replace = None
        if not self.causal:
            windows = _windows(real_in, self.stride)  # (B, W)
            chosen = span_mask(windows, self.ratio, self.span)
            replace = chosen.repeat_interleave(self.stride, dim=1)[:, : real_in.shape[1]] & real_in
        h, m = self.model.embed(x, mask, replace=replace, mask_token=self.mask_token)
        z, zm = self.model.body(h, m)
        if self.has_cls:
            z, zm = z[:, 1:], zm[:, 1:]
        if self.causal:
            pred = self.recon(z)  # (B, W, stride * K)
        else:
            # Only masked windows are scored: reconstruct those alone (the head is the costliest layer for bytes).
            pred = z.new_zeros(*z.shape[:2], self.recon.out_features)
            pred[chosen] = self.recon(z[chosen]).to(pred.dtype)
        pred = rearrange(pred, "b w (s k) -> b (w s) k", s=self.stride)
        L = real_in.shape[1]
        if self.causal:
            # Window j has read inputs up to the end of window j; it predicts window j + 1.
            pred = pred[:, : max(L - self.stride, 0)]
            target = target[:, self.stride : L]
            scored = real_in[:, self.stride : L]
        else:
            pred = pred[:, :L]
            scored = replace
        return self._loss(pred, target, scored)

    def _loss(self, pred: Tensor, target: Tensor, scored: Tensor) -> tuple[Tensor, dict[str, float]]:
        count = int(scored.sum())
        if count == 0:
            return pred.sum() * 0.0, {"count": 0.0, "correct": 0.0}
        if self.classify:
            logits = pred[scored].float()  # (N, V)
            ids = target[scored]
            loss = F.cross_entropy(logits, ids)
            return loss, {"count": float(count), "correct": float((logits.argmax(-1) == ids).sum())}
        if self.config.normalize_targets and self.stride * self.out_per_input >= 4:
            target = _normalize_windows(target, self.stride)
        err = (pred.float() - target).pow(2).mean(-1)  # (B, L)
        return err[scored].mean(), {"count": float(count), "correct": 0.0}


def _windows(real: Tensor, stride: int) -> Tensor:
    from multiseq.stem import downsample_mask

    return downsample_mask(real, stride) if stride > 1 else real


def _normalize_windows(target: Tensor, stride: int) -> Tensor:
    """(B, L, K) values -> each stride window's values standardised by their own mean and std."""
    B, L, K = target.shape
    pad = (-L) % stride
    t = F.pad(target, (0, 0, 0, pad)).view(B, (L + pad) // stride, stride * K)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=False) + 1e-6).sqrt()
    return t.view(B, L + pad, K)[:, :L]


def body_state(model: nn.Module) -> dict[str, Tensor]:
    """The weights fine-tuning carries over from a pretrained model: everything but the task head."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}

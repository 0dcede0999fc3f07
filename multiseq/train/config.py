"""`TrainConfig` (the optimisation settings of one run) and `FitResult` (what `fit` returns)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from multiseq.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one run (JSON round trip via `dataclasses.asdict` / `TrainConfig(**d)`).

    Attributes:
        steps: optimiser steps; or give `epochs` (passes over the training set, may be fractional).
        batch_size: global batch per optimiser step (over all processes and accumulation micro-batches).
        accumulate: micro-batches per step (gradient accumulation); must divide the per-process batch.
        lr, weight_decay, betas, eps: AdamW. Parameters tagged with `mark_optim` use their own lr / weight decay;
            biases and norm weights (1-D tensors) get no weight decay.
        warmup_steps: linear warm-up steps; None means 5% of the run. Then cosine decay to `final_lr_ratio * lr`.
        grad_clip: max global gradient norm (0 disables clipping).
        label_smoothing: cross-entropy label smoothing.
        seed: seeds the model initialisation (when built from a preset), dropout and the data order.
        deterministic: `torch.use_deterministic_algorithms(True)`; bit-exact resume on CPU.
        precision: `auto` (bf16 autocast on CUDA, fp32 on CPU), `bf16` or `fp32`.
        log_every, eval_every, checkpoint_every: in steps; 0 means only at the end (eval, checkpoint) / never.
        keep: training checkpoints kept (the last `keep`).
        eval_batch_size: batch for evaluation (default: batch_size).
        num_workers: DataLoader worker processes for loading/collating (0 = in the main process).
    """

    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 32
    accumulate: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int | None = None
    final_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    seed: int = 0
    deterministic: bool = False
    precision: str = "auto"
    log_every: int = 10
    eval_every: int = 0
    checkpoint_every: int = 0
    keep: int = 3
    eval_batch_size: int | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError(f"give exactly one of steps or epochs (got steps={self.steps}, epochs={self.epochs})")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError(f"steps must be an int >= 1, got {self.steps!r}")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs!r}")
        for name in ("batch_size", "accumulate", "keep"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.batch_size % self.accumulate:
            raise ConfigError(f"batch_size {self.batch_size} is not divisible by accumulate {self.accumulate}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("lr must be > 0, weight_decay and grad_clip >= 0")

    def total_steps(self, num_examples: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(self.epochs * num_examples / self.batch_size))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown train config keys {unknown}; valid keys: {', '.join(sorted(known))}")
        return cls(**d)


@dataclass
class FitResult:
    """What `fit` returns: the trained model (unwrapped), the last metrics and the run directory (or None)."""

    model: nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None

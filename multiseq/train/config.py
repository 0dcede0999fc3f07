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
        budget_minutes: wall-clock budget of the optimiser steps. The run times its first steps in a rehearsal
            (3 warm-up + 10 timed steps, then model, optimiser and RNG are put back), fixes
            `total = floor((budget - rehearsal) / step time)` (capped by `steps` / `epochs` when given), records
            it in config.json and metrics.jsonl, and runs as a step-based run of that length; it also stops
            cleanly if the wall clock passes the budget anyway. Evaluation time does not count.
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
    budget_minutes: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.steps is not None and self.epochs is not None:
            raise ConfigError(f"give one of steps or epochs, not both (got steps={self.steps}, epochs={self.epochs})")
        if self.steps is None and self.epochs is None and self.budget_minutes is None:
            raise ConfigError("give exactly one of steps or epochs, or budget_minutes (got none)")
        _check(self.budget_minutes is None or _number(self.budget_minutes) and self.budget_minutes > 0,
               "budget_minutes", "a number > 0 (or None for no budget)", self.budget_minutes)
        _check(self.steps is None or _int(self.steps) and self.steps >= 1, "steps", "an int >= 1", self.steps)
        _check(self.epochs is None or _number(self.epochs) and self.epochs > 0, "epochs", "a number > 0", self.epochs)
        for name in ("batch_size", "accumulate", "keep"):
            _check(_int(getattr(self, name)) and getattr(self, name) >= 1, name, "an int >= 1", getattr(self, name))
        for name in ("log_every", "eval_every", "checkpoint_every", "num_workers", "seed"):
            _check(_int(getattr(self, name)) and getattr(self, name) >= 0, name, "an int >= 0", getattr(self, name))
        _check(self.warmup_steps is None or _int(self.warmup_steps) and self.warmup_steps >= 0,
               "warmup_steps", "an int >= 0 (or None for 5% of the run)", self.warmup_steps)
        _check(self.eval_batch_size is None or _int(self.eval_batch_size) and self.eval_batch_size >= 1,
               "eval_batch_size", "an int >= 1 (or None for batch_size)", self.eval_batch_size)
        _check(_number(self.lr) and self.lr > 0, "lr", "a number > 0", self.lr)
        _check(_number(self.eps) and self.eps > 0, "eps", "a number > 0", self.eps)
        _check(_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0", self.weight_decay)
        _check(_number(self.grad_clip) and self.grad_clip >= 0, "grad_clip", "a number >= 0 (0 disables clipping)",
               self.grad_clip)
        _check(_number(self.label_smoothing) and 0 <= self.label_smoothing < 1, "label_smoothing",
               "a number in [0, 1)", self.label_smoothing)
        _check(_number(self.final_lr_ratio) and 0 <= self.final_lr_ratio <= 1, "final_lr_ratio",
               "a number in [0, 1]", self.final_lr_ratio)
        _check(len(self.betas) == 2 and all(_number(b) and 0 <= b < 1 for b in self.betas), "betas",
               "two numbers in [0, 1)", self.betas)
        if self.batch_size % self.accumulate:
            raise ConfigError(f"batch_size {self.batch_size} is not divisible by accumulate {self.accumulate}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")

    def total_steps(self, num_examples: int) -> int:
        """Optimiser steps of the run from `steps` / `epochs` (a budget run fixes its own total at its start)."""
        if self.steps is not None:
            return self.steps
        if self.epochs is None:
            raise ConfigError("a budget-only run has no fixed step count until it has timed its first steps")
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


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check(ok: bool, name: str, valid: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {valid}, got {value!r}")


@dataclass
class FitResult:
    """What `fit` returns: the trained model (unwrapped), the last metrics and the run directory (or None)."""

    model: nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None

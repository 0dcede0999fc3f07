"""Evaluation (loss, accuracy, confusion matrix) and batched prediction."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseq.errors import ConfigError
from multiseq.train.data import Collate, _check_model_fits, _forward


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse a precision the device cannot run (before a run writes anything). bf16 autocast runs on CUDA GPUs
    that support bf16 and on CPUs where this torch build's CPU autocast runs bf16 matmuls."""
    if precision != "bf16":
        return
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision='bf16': {torch.cuda.get_device_name(device)} does not support bf16; use fp32")
    if device.type == "cpu" and not _cpu_bf16():
        raise ConfigError("precision='bf16' needs bf16 CPU autocast, which this torch build or CPU does not run; "
                          "use fp32 (precision='auto')")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"precision='bf16' is supported on cpu and cuda, not {device.type}; use fp32")


@functools.lru_cache(maxsize=1)
def _cpu_bf16() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.ones(4, 4) @ torch.ones(4, 4)
        return out.dtype == torch.bfloat16 and bool((out.float() == 4).all())
    except (RuntimeError, TypeError):
        return False


def _autocast(device: torch.device, precision: str):
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if precision == "bf16":
        check_precision(device, precision)
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _bar(total: int, desc: str, enabled: bool, initial: int = 0, unit: str = "it"):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, leave=False)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    batch_size: int = 64,
    device: Any = None,
    progress: bool = False,
    precision: str = "auto",
    num_workers: int = 0,
) -> dict[str, Any]:
    """Loss, accuracy and confusion matrix of `model` on a dataset.

    Returns:
        `{"loss", "accuracy", "n", "num_classes", "confusion"}` where `confusion[i][j]` counts examples of true
        class i predicted as j.
    """
    model = getattr(model, "module", model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if len(data) == 0:
        raise ConfigError("cannot evaluate on an empty dataset")
    _check_model_fits(model, data)
    was_training = model.training
    model.eval()
    C = model.config.num_classes
    confusion = torch.zeros(C, C, dtype=torch.long)
    loss_sum, n = 0.0, 0
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=False, collate_fn=Collate(model.adapter, model.is_dual), num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),  # keeps the global RNG (dropout) untouched
    )
    bar = _bar(len(data), "eval", progress, unit="ex")
    try:
        for batch in loader:
            with _autocast(device, precision):
                logits, y = _forward(model, batch, device)
            logits = logits.float()
            if not torch.isfinite(logits).all():
                raise FloatingPointError("the model produced NaN/Inf logits during evaluation")
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            pred = logits.argmax(-1)
            confusion += torch.bincount((y * C + pred).cpu(), minlength=C * C).view(C, C)
            n += len(y)
            bar.update(len(y))
    finally:
        bar.close()
        model.train(was_training)
    correct = int(confusion.diag().sum())
    return {"loss": loss_sum / n, "accuracy": correct / n, "n": n, "num_classes": C, "confusion": confusion.tolist()}


@torch.no_grad()
def predict(model: nn.Module, inputs: Sequence[Any], batch_size: int = 64, inputs2: Sequence[Any] | None = None) -> tuple[Tensor, Tensor]:
    """Raw inputs -> (predicted classes `(N,)`, probabilities `(N, C)`), in batches."""
    model = getattr(model, "module", model)
    probs = []
    for i in range(0, len(inputs), batch_size):
        second = None if inputs2 is None else list(inputs2[i : i + batch_size])
        probs.append(model.predict_proba(list(inputs[i : i + batch_size]), second).cpu())
    p = torch.cat(probs) if probs else torch.zeros(0, model.config.num_classes)
    return p.argmax(-1), p

"""`fit`: the training loop (AdamW, warm-up + cosine, clipping, accumulation, checkpoints, exact resume).

A dataset is anything with `__len__` and `ds[i] -> (raw_input, label)`; optional attributes `num_classes`, `pair`
(items are `(doc1, doc2)` for dual-encoder models), `adapter` (an `AdapterConfig` the model must use), `labels`
(every example's label), `label_names` (class names) and `task` (a name). Batches are collated by the model's own adapter.

Exactness of `resume`: the data order is a pure function of (seed, position), the learning-rate schedule a pure
function of the step, and the optimiser, RNG states and data position are checkpointed; on CPU with
`deterministic=True` a resumed run reproduces an uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from multiseq.config import ModelConfig
from multiseq.errors import ConfigError
from multiseq.train.config import FitResult, TrainConfig
from multiseq.train.data import Collate, _forward, _MicroBatches, class_names, model_for_data
from multiseq.train.distributed import _all_sum, _barrier, _dist_setup
from multiseq.train.evaluate import _autocast, _bar, evaluate
from multiseq.train.rundir import _checkpoint, _finish_run, _Log, _prepare_run_dir


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups.

    Parameters tagged by `mark_optim` (`p._optim = {"lr": ..., "weight_decay": ...}`: SSM A/B/dt, EMA
    coefficients) get their own group per distinct setting; other matrices get `weight_decay`; 1-D tensors
    (biases, norm scales) get none. Every group records `base_lr` (the schedule scales it) and its parameter names.
    """
    groups: dict[tuple, dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        special = getattr(p, "_optim", None)
        if special is not None:
            g_lr, g_wd = float(special.get("lr", lr)), float(special.get("weight_decay", 0.0))
            key = ("special", g_lr, g_wd)
        else:
            g_lr, g_wd = lr, (weight_decay if p.ndim >= 2 else 0.0)
            key = ("decay" if g_wd else "no_decay", g_lr, g_wd)
        g = groups.setdefault(key, {"params": [], "names": [], "lr": g_lr, "base_lr": g_lr, "weight_decay": g_wd})
        g["params"].append(p)
        g["names"].append(name)
    return list(groups.values())


def lr_factor(step: int, total: int, warmup: int, final_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for optimiser step `step` (0-based): linear warm-up, then cosine."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def fit(
    model: str | ModelConfig | nn.Module,
    train_data: Any,
    val_data: Any = None,
    *,
    config: TrainConfig | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    device: Any = None,
    task_info: dict[str, Any] | None = None,
    **train_options: Any,
) -> FitResult:
    """Train a model on a dataset with AdamW, warm-up + cosine, clipping, accumulation and checkpoints.

    Args:
        model: a preset name, a `ModelConfig`, or a `SequenceModel` (then `seed` does not affect its init).
        train_data, val_data: datasets (see the module docstring); `val_data` is evaluated every `eval_every`
            steps and at the end.
        config: a `TrainConfig`; `**train_options` build or override one (`steps=100, lr=3e-3`).
        out: run directory (`config.json`, `metrics.jsonl`, `checkpoints/`, `model.safetensors`, plots). Without
            it nothing is written and nothing can be resumed.
        resume: continue from the newest checkpoint in `out` (exactly); the run's settings must match.
        progress: tqdm bars with throughput and ETA; False logs plain lines every `log_every` steps instead.
        device: `auto`/None (CUDA if present), `cpu`, `cuda`, ... Under torchrun, one device per process.
        task_info: JSON-able description of the data (task name, options) stored in config.json and compared on
            resume.

    Returns:
        `FitResult(model, metrics, run_dir)`; `metrics` holds the last train log and the last evaluation.
    """
    cfg = dataclasses.replace(config, **train_options) if config is not None else TrainConfig(**train_options)
    previous = torch.are_deterministic_algorithms_enabled()
    if cfg.deterministic:
        # Needed by cuBLAS for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    try:
        return _fit(model, train_data, val_data, cfg, out, resume, progress, device, task_info)
    finally:
        torch.use_deterministic_algorithms(previous)  # a global switch: leave it as the caller had it


def _fit(model, train_data, val_data, cfg, out, resume, progress, device, task_info) -> FitResult:
    rank, world, dev = _dist_setup(device)
    if cfg.batch_size % (world * cfg.accumulate):
        raise ConfigError(
            f"batch_size {cfg.batch_size} must be divisible by processes ({world}) x accumulate ({cfg.accumulate})"
        )
    n = len(train_data)
    if n == 0:
        raise ConfigError("the training set is empty")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    net = model_for_data(model, train_data, device=dev)
    net.train()
    total = cfg.total_steps(n)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, total // 20)

    run_dir = Path(out) if out is not None else None
    labels = class_names(train_data, net.config.num_classes)
    run_config = {
        "model": net.config.to_dict(),
        "train": cfg.to_dict(),
        "task": task_info or {"task": getattr(train_data, "task", type(train_data).__name__), "train_size": n},
        "class_names": labels,
        "world_size": world,
    }
    optimizer = torch.optim.AdamW(param_groups(net, cfg.lr, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    start_step = 0
    log = _Log(run_dir / "metrics.jsonl" if run_dir is not None and rank == 0 else None)
    if run_dir is not None:
        start_step = _prepare_run_dir(run_dir, run_config, resume, rank, world, net, optimizer, dev, n)

    ddp = net
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    sampler = _MicroBatches(n, cfg, start_step, total, rank, world)
    loader = torch.utils.data.DataLoader(
        train_data, batch_sampler=sampler, collate_fn=Collate(net.adapter, net.is_dual), num_workers=cfg.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),  # its own generator: the global RNG stays untouched
    )
    last: dict[str, Any] = {}
    bar = _bar(total, "train", progress and rank == 0, initial=start_step, unit="step")
    window = {"loss": 0.0, "correct": 0.0, "count": 0.0, "t": time.perf_counter(), "steps": 0}
    t_start = time.perf_counter()
    batches = iter(loader)
    try:
        for step in range(start_step, total):
            factor = lr_factor(step, total, warmup, cfg.final_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * factor
            for a in range(cfg.accumulate):
                batch = next(batches)
                sync = a == cfg.accumulate - 1 or world == 1
                with (contextlib.nullcontext() if sync else ddp.no_sync()), _autocast(dev, cfg.precision):
                    logits, y = _forward(ddp, batch, dev)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the lr or check the data")
                (loss / cfg.accumulate).backward()
                window["loss"] += loss.item() * len(y)
                window["correct"] += (logits.argmax(-1) == y).sum().item()
                window["count"] += len(y)
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            window["steps"] += 1
            done = step + 1
            bar.update(1)
            if done % cfg.log_every == 0 or done == total:
                last["train"] = _log_train(window, done, total, n, cfg, optimizer, world, dev, log, bar, progress, rank, t_start)
            if val_data is not None and ((cfg.eval_every and done % cfg.eval_every == 0) or done == total):
                window["t"] -= _eval_during_fit(net, val_data, cfg, dev, done, n, log, last, rank, world, progress)
            if run_dir is not None and ((cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == total):
                _checkpoint(run_dir, done, net, optimizer, cfg, world, dev, rank, n, labels)
    finally:
        bar.close()
    if run_dir is not None and rank == 0:
        _finish_run(run_dir, net, labels, last)
    _barrier(world)
    return FitResult(model=net, metrics=last, run_dir=run_dir)


def _log_train(window, done, total, n, cfg, optimizer, world, dev, log, bar, progress, rank, t_start) -> dict[str, Any]:
    loss_sum, correct, count = _all_sum([window["loss"], window["correct"], window["count"]], world, dev)
    elapsed = max(time.perf_counter() - window["t"], 1e-9)
    record = {
        "kind": "train",
        "step": done,
        "epoch": done * cfg.batch_size / n,
        "loss": loss_sum / max(count, 1),
        "accuracy": correct / max(count, 1),
        "lr": optimizer.param_groups[0]["lr"],
        "samples_per_s": count / elapsed,
        "time_s": time.perf_counter() - t_start,
    }
    window.update(loss=0.0, correct=0.0, count=0.0, t=time.perf_counter(), steps=0)
    if rank == 0:
        log(record)
        if progress:
            bar.set_postfix(loss=f"{record['loss']:.4f}", acc=f"{record['accuracy']:.3f}", sps=f"{record['samples_per_s']:.0f}")
        else:
            eta = (total - done) * record["time_s"] / max(done, 1)
            print(
                f"step {done}/{total}  loss {record['loss']:.4f}  acc {record['accuracy']:.3f}  "
                f"lr {record['lr']:.2e}  {record['samples_per_s']:.1f} samples/s  eta {eta:.0f}s",
                flush=True,
            )
    return record


def _eval_during_fit(net, val_data, cfg, dev, done, n, log, last, rank, world, progress) -> float:
    """Evaluate on rank 0 (others wait); returns the seconds spent so throughput excludes them."""
    t0 = time.perf_counter()
    if rank == 0:
        res = evaluate(net, val_data, cfg.eval_batch_size or cfg.batch_size, dev, progress, cfg.precision, cfg.num_workers)
        record = {"kind": "eval", "split": "val", "step": done, "epoch": done * cfg.batch_size / n, **res}
        log(record)
        last["eval"] = record
        line = f"eval step {done}: loss {res['loss']:.4f}  accuracy {res['accuracy']:.4f}  (n={res['n']})"
        if progress:
            from tqdm.auto import tqdm

            tqdm.write(line)  # above the bar, which stays in place
        else:
            print(line, flush=True)
    _barrier(world)
    return time.perf_counter() - t0

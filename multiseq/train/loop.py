"""`fit` and `pretrain`: one step loop (AdamW, warm-up + cosine, clipping, accumulation, checkpoints, exact resume,
wall-clock budget) over an objective: classification or self-pretraining.

A dataset is anything with `__len__` and `ds[i] -> (raw_input, label)`; optional attributes `num_classes`, `pair`
(items are `(doc1, doc2)` for dual-encoder models), `adapter` (an `AdapterConfig` the model must use), `labels`
(every example's label), `label_names` (class names) and `task` (a name). Batches are collated by the model's own adapter.

Exactness of `resume`: the data order is a pure function of (seed, position), the learning-rate schedule a pure
function of the step, and the optimiser, RNG states and data position are checkpointed; on CPU with
`deterministic=True` a resumed run reproduces an uninterrupted one bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from multiseq.config import ModelConfig
from multiseq.errors import ConfigError
from multiseq.train.budget import over_budget, rehearse
from multiseq.train.config import FitResult, TrainConfig
from multiseq.train.data import Collate, _MicroBatches, class_names, model_for_data, stream_indices
from multiseq.train.distributed import _all_sum, _barrier, _dist_setup
from multiseq.train.evaluate import _autocast, _bar, check_precision
from multiseq.train.init import init_from
from multiseq.train.lock import RunLock
from multiseq.train.objectives import PretrainConfig
from multiseq.train.records import Clock, Plan, RunContext, Window
from multiseq.train.report import Reporter
from multiseq.train.rundir import finish_run, open_run_dir, save_checkpoint, write_config
from multiseq.train.steps import Classification, Pretraining, Snapshot, Stepper


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


@dataclass(frozen=True)
class _Job:
    """One call of `fit` or `pretrain`, as given."""

    model: Any
    train: Any
    val: Any
    cfg: TrainConfig
    out: Path | None
    resume: bool
    progress: bool
    device: Any
    task_info: dict[str, Any] | None
    init: Any = None
    pretrain: PretrainConfig | None = None


def fit(
    model: str | ModelConfig | nn.Module | None,
    train_data: Any,
    val_data: Any = None,
    *,
    config: TrainConfig | None = None,
    init: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    device: Any = None,
    task_info: dict[str, Any] | None = None,
    **train_options: Any,
) -> FitResult:
    """Train a classifier on a dataset with AdamW, warm-up + cosine, clipping, accumulation and checkpoints.

    Args:
        model: a preset name, a `ModelConfig`, or a `SequenceModel` (then `seed` does not affect its init); None
            with `init` takes the init file's config.
        train_data, val_data: datasets (see the module docstring); `val_data` is evaluated every `eval_every`
            steps and at the end.
        config: a `TrainConfig`; `**train_options` build or override one (`steps=100, lr=3e-3`).
        init: a run directory or `.safetensors` model file (from `pretrain` or `fit`): its body weights are copied
            exactly and the head is fresh, for the data's classes. A given `model` must match its non-head fields.
        out: run directory (`config.json`, `metrics.jsonl`, `checkpoints/`, `model.safetensors`, plots, `.lock`).
            Without it nothing is written and nothing can be resumed.
        resume: continue from the newest checkpoint in `out` (exactly); the run's settings must match.
        progress: tqdm bars with throughput and ETA; False logs plain lines every `log_every` steps instead.
        device: `auto`/None (CUDA if present), `cpu`, `cuda`, ... Under torchrun, one device per process.
        task_info: JSON-able description of the data (task name, options) stored in config.json and compared on
            resume.

    Returns:
        `FitResult(model, metrics, run_dir)`; `metrics` holds the last train log and the last evaluation.
    """
    cfg = _settings(config, train_options)
    job = _Job(model, train_data, val_data, cfg, _path(out), resume, progress, device, task_info, init=init)
    return _deterministic(job)


def pretrain(
    model: str | ModelConfig | nn.Module,
    train_data: Any,
    *,
    config: TrainConfig | None = None,
    objective: PretrainConfig | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    device: Any = None,
    task_info: dict[str, Any] | None = None,
    **train_options: Any,
) -> FitResult:
    """Self-pretrain a model's body on a dataset's inputs (labels are ignored; no validation pass).

    Same loop, run directory, checkpoints (which also hold the mask vector and reconstruction head, so resume is
    exact), logs, plots, budget and torchrun support as `fit`; config.json records `"stage": "pretrain"` and the
    objective. The final `model.safetensors` is the `SequenceModel` (pretrained body, untouched head): give it
    (or the run directory) to `fit(..., init=...)`.

    Args:
        objective: a `PretrainConfig` (default: masked modelling, or causal prediction for causal models).
        Others: as `fit`.
    """
    cfg = _settings(config, train_options)
    job = _Job(model, train_data, None, cfg, _path(out), resume, progress, device, task_info,
               pretrain=objective or PretrainConfig())
    return _deterministic(job)


def _settings(config: TrainConfig | None, options: dict[str, Any]) -> TrainConfig:
    if config is not None and not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    return dataclasses.replace(config, **options) if config is not None else TrainConfig(**options)


def _path(out: Any) -> Path | None:
    return Path(out) if out is not None else None


def _deterministic(job: _Job) -> FitResult:
    previous = torch.are_deterministic_algorithms_enabled()
    if job.cfg.deterministic:
        # Needed by cuBLAS for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    try:
        return _run(job)
    finally:
        torch.use_deterministic_algorithms(previous)  # a global switch: leave it as the caller had it


def _run(job: _Job) -> FitResult:
    """Validate and build everything, then (and only then) write into the run directory and train."""
    cfg, data = job.cfg, job.train
    rank, world, dev = _dist_setup(job.device)
    if cfg.batch_size % (world * cfg.accumulate):
        raise ConfigError(
            f"batch_size {cfg.batch_size} must be divisible by processes ({world}) x accumulate ({cfg.accumulate})"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {dev} asked for, but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    check_precision(dev, cfg.precision)
    n = len(data)
    if n == 0:
        raise ConfigError("the training set is empty")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    init_info = None
    if job.init is not None:
        net, init_info = init_from(job.init, job.model, data, device=dev)
    elif job.model is None:
        raise ConfigError("give a model (preset name, ModelConfig or SequenceModel), or init= a pretrained run")
    else:
        net = model_for_data(job.model, data, device=dev)
    objective = Pretraining(net, job.pretrain) if job.pretrain is not None else Classification(net, cfg.label_smoothing)
    lock = None
    try:
        objective.module.train()
        ctx = RunContext(rank, world, dev, job.out, cfg, n, class_names(data, net.config.num_classes), job.progress)
        collate = Collate(net.adapter, net.is_dual, labels=job.pretrain is None)
        _dry_run(ctx, objective, data, collate)
        run_config = {
            "stage": objective.stage,
            "model": net.config.to_dict(),
            "train": cfg.to_dict(),
            "task": job.task_info or {"task": getattr(data, "task", type(data).__name__), "train_size": n},
            "class_names": ctx.labels,
            "world_size": world,
        }
        if job.pretrain is not None:
            run_config["pretrain"] = objective.describe()
        if init_info is not None:
            run_config["init"] = init_info
        optimizer = torch.optim.AdamW(param_groups(objective.module, cfg.lr, cfg.weight_decay), lr=cfg.lr,
                                      betas=cfg.betas, eps=cfg.eps)
        start, stored, spent = 0, run_config, 0.0
        if job.out is not None:
            lock = RunLock(job.out) if rank == 0 else None
            start, stored, spent = open_run_dir(ctx, run_config, job.resume, lock, objective, optimizer)
        module = objective.module
        if world > 1:
            module = nn.parallel.DistributedDataParallel(module, device_ids=[dev.index] if dev.type == "cuda" else None)
        stepper = Stepper(ctx, objective, module, optimizer)
        reporter = Reporter(ctx, objective)
        clock = Clock(spent)
        plan = _plan(ctx, stored, stepper, data, collate, reporter)
        return _loop(ctx, plan, stepper, data, job.val, collate, start, clock, reporter)
    finally:
        objective.close()
        if lock is not None:
            lock.release()


def _dry_run(ctx: RunContext, objective: Any, data: Any, collate: Collate) -> None:
    """One forward pass on two examples (weights and RNG put back): data, model and precision problems show up
    before anything is written."""
    idx = stream_indices(ctx.n, ctx.cfg.seed, 0, min(2, ctx.n))
    snap = Snapshot(objective.module, None, ctx.device)
    try:
        with torch.no_grad(), _autocast(ctx.device, ctx.cfg.precision):
            objective(objective.module, collate([data[i] for i in idx]), ctx.device)
    except RuntimeError as e:
        if ctx.cfg.precision != "bf16":
            raise
        raise ConfigError(f"this model does not run with precision='bf16' on {ctx.device}: {e}; use fp32") from None
    finally:
        snap.restore()


def _plan(ctx: RunContext, stored: dict[str, Any], stepper: Stepper, data: Any, collate: Collate,
          reporter: Reporter) -> Plan:
    """Total and warm-up steps; a budget run fixes its total from a timed rehearsal (or the one it recorded)."""
    cfg = ctx.cfg
    budget_s = cfg.budget_minutes * 60.0 if cfg.budget_minutes is not None else None
    if budget_s is None:
        total = cfg.total_steps(ctx.n)
    elif stored.get("budget"):
        total = int(stored["budget"]["total_steps"])  # resume keeps the recorded total
    else:
        cap = cfg.total_steps(ctx.n) if cfg.steps is not None or cfg.epochs is not None else None
        rec = rehearse(ctx, stepper, data, collate, cap)
        total = rec["total_steps"]
        if ctx.writes:
            write_config(ctx.run_dir, {**stored, "budget": rec})
        reporter.budget(rec)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, total // 20)
    return Plan(total, warmup, budget_s)


def _loop(ctx: RunContext, plan: Plan, stepper: Stepper, data: Any, val: Any, collate: Collate, start: int,
          clock: Clock, reporter: Reporter) -> FitResult:
    cfg = ctx.cfg
    objective = stepper.objective
    sampler = _MicroBatches(ctx.n, cfg, start, plan.total, ctx.rank, ctx.world)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),  # its own generator: the global RNG stays untouched
    )
    last: dict[str, Any] = {}
    window = Window()
    bar = _bar(plan.total, objective.stage, ctx.progress and ctx.main, initial=start, unit="step")
    batches = iter(loader)
    done, stopped = start, False
    try:
        for step in range(start, plan.total):
            loss, hits, count = stepper.step(batches, step, lr_factor(step, plan.total, plan.warmup, cfg.final_lr_ratio))
            window.add(loss, hits, count)
            done = step + 1
            bar.update(1)
            if plan.budget_s is not None and done < plan.total:
                stopped = _all_sum([float(over_budget(clock.train_s, plan.budget_s))], ctx.world, ctx.device)[0] > 0
            end = done == plan.total or stopped
            if (cfg.log_every and done % cfg.log_every == 0) or end:
                last["train"] = reporter.train(window, done, plan, stepper.optimizer, clock, bar)
            if val is not None and ((cfg.eval_every and done % cfg.eval_every == 0) or end):
                seconds = reporter.evaluate(objective.net, val, done, last)
                window.exclude(seconds)
                clock.exclude(seconds)
            if ctx.run_dir is not None and ((cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or end):
                save_checkpoint(ctx, done, objective, stepper.optimizer, {"train_seconds": clock.train_s})
            if stopped:
                break
    finally:
        bar.close()
    if plan.budget_s is not None:
        last["budget"] = reporter.budget_end(done, plan, stopped, clock)
    if ctx.writes:
        finish_run(ctx, objective.net, last)
    _barrier(ctx.world)
    return FitResult(model=objective.net, metrics=last, run_dir=ctx.run_dir)

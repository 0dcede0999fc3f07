"""Training and evaluation: a handful of functions, not a Trainer class.

    from multiseq.train import fit, evaluate, TrainConfig
    result = fit("local_bytes_tiny", train_ds, val_ds, config=TrainConfig(steps=200, batch_size=32), out="runs/x")
    print(evaluate(result.model, test_ds)["accuracy"])

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
import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseq.checkpoint import (
    atomic_write_bytes,
    list_training_checkpoints,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_training_checkpoint,
    save_model,
    save_training_checkpoint,
)
from multiseq.config import AdapterConfig, ModelConfig
from multiseq.errors import CheckpointError, ConfigError

# Fields that may change between a run and its resumption without changing the numbers it produces.
_FREE_FIELDS = {"log_every", "eval_every", "checkpoint_every", "keep", "eval_batch_size", "num_workers"}


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


class InMemoryDataset(torch.utils.data.Dataset):
    """A dataset from lists: `ds[i] -> (inputs[i], labels[i])`, with the attributes `fit` understands."""

    def __init__(
        self,
        inputs: Sequence[Any],
        labels: Sequence[int],
        num_classes: int | None = None,
        adapter: AdapterConfig | None = None,
        pair: bool = False,
        label_names: Sequence[str] | None = None,
        task: str = "custom",
    ) -> None:
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs, self.labels = list(inputs), np.asarray([int(y) for y in labels], dtype=np.int64)
        self.num_classes = num_classes or (int(self.labels.max()) + 1 if len(self.labels) else 1)
        self.adapter, self.pair, self.task = adapter, pair, task
        self.label_names = list(label_names) if label_names else [str(i) for i in range(self.num_classes)]

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.inputs[i], int(self.labels[i])


@dataclass
class FitResult:
    """What `fit` returns: the trained model (unwrapped), the last metrics and the run directory (or None)."""

    model: nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None


# ----------------------------------------------------------------------------------------------------- pieces


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


def stream_indices(num_examples: int, seed: int, start: int, count: int) -> list[int]:
    """Dataset indices at positions `start .. start+count-1` of the training stream.

    The stream is the concatenation of per-epoch permutations, epoch `e` shuffled by a generator seeded with
    `(seed, e)`; the position alone therefore says where a run is in its data.
    """
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, num_examples)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(num_examples, generator=g)
        take = min(count - len(out), num_examples - offset)
        out.extend(perm[offset : offset + take].tolist())
        pos += take
    return out


class _MicroBatches(torch.utils.data.Sampler):
    """Yields this process's micro-batches (lists of indices) for steps `start_step ..`; see `stream_indices`."""

    def __init__(self, n: int, cfg: TrainConfig, start_step: int, total: int, rank: int, world: int) -> None:
        self.n, self.cfg, self.start, self.total, self.rank, self.world = n, cfg, start_step, total, rank, world

    def __len__(self) -> int:
        return (self.total - self.start) * self.cfg.accumulate

    def __iter__(self) -> Iterator[list[int]]:
        B, A = self.cfg.batch_size, self.cfg.accumulate
        local = B // self.world
        micro = local // A
        for step in range(self.start, self.total):
            idx = stream_indices(self.n, self.cfg.seed, step * B, B)[self.rank * local : (self.rank + 1) * local]
            for a in range(A):
                yield idx[a * micro : (a + 1) * micro]


class Collate:
    """Turns a list of `(raw, label)` items into `(x, mask, x2, mask2, labels)` with the model's adapter."""

    def __init__(self, adapter: Any, pair: bool) -> None:
        self.adapter, self.pair = adapter, pair

    def __call__(self, items: list[tuple[Any, Any]]) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor]:
        raws = [r for r, _ in items]
        y = torch.as_tensor([int(lbl) for _, lbl in items], dtype=torch.long)
        if self.pair:
            for r in raws:
                if not (isinstance(r, (tuple, list)) and len(r) == 2):
                    raise ConfigError(f"a pair task's items must be (doc1, doc2) tuples, got {type(r).__name__}")
            x, m = self.adapter([r[0] for r in raws])
            x2, m2 = self.adapter([r[1] for r in raws])
            return x, m, x2, m2, y
        x, m = self.adapter(raws)
        return x, m, None, None, y


def model_for_data(model: str | ModelConfig | nn.Module, data: Any, device: Any = None, **overrides: Any) -> nn.Module:
    """Build (or check) a model for a dataset: its adapter, number of classes and, for pairs, the dual head.

    A preset name or config is adjusted to the data; a ready model is only checked against it.
    """
    from multiseq.models import create_model

    if isinstance(model, nn.Module):
        _check_model_fits(model, data)
        return model.to(device) if device is not None else model
    changes: dict[str, Any] = dict(overrides)
    if getattr(data, "num_classes", None):
        changes.setdefault("num_classes", int(data.num_classes))
    adapter = getattr(data, "adapter", None)
    if isinstance(adapter, AdapterConfig):
        changes.setdefault("adapter", dataclasses.asdict(adapter))
    if getattr(data, "pair", False):
        changes.setdefault("head", {"kind": "dual"})
    built = create_model(model, device=device, **changes)
    _check_model_fits(built, data)
    return built


def class_names(data: Any, num_classes: int) -> list[str]:
    """The data's `label_names` if it has them (one per class), else "0", "1", ..."""
    names = getattr(data, "label_names", None)
    if names is not None and len(names) == num_classes:
        return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


def _check_model_fits(model: nn.Module, data: Any) -> None:
    nc = getattr(data, "num_classes", None)
    if nc and model.config.num_classes != nc:
        raise ConfigError(f"the model predicts {model.config.num_classes} classes but the data has {nc}")
    if getattr(data, "pair", False) != model.is_dual:
        raise ConfigError(
            "the data are document pairs but the model has a single-input head (use head={'kind': 'dual'})"
            if model.is_dual is False
            else "the model has a dual-encoder head but the data are single inputs"
        )


def _autocast(device: torch.device, precision: str):
    use_bf16 = device.type == "cuda" and precision in ("auto", "bf16")
    if precision == "bf16" and device.type != "cuda":
        raise ConfigError("precision='bf16' autocast is for CUDA; on CPU use fp32 (precision='auto')")
    return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()


def _forward(model: nn.Module, batch: tuple, device: torch.device) -> tuple[Tensor, Tensor]:
    x, m, x2, m2, y = (t.to(device, non_blocking=True) if t is not None else None for t in batch)
    logits = model(x, m, x2, m2) if x2 is not None else model(x, m)
    return logits, y


def _bar(total: int, desc: str, enabled: bool, initial: int = 0, unit: str = "it"):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, leave=False)


# ------------------------------------------------------------------------------------------------- evaluation


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


# ---------------------------------------------------------------------------------------------- distributed


def _dist_setup(device: Any) -> tuple[int, int, torch.device]:
    """(rank, world, device); initialises the process group under torchrun (NCCL on GPUs, gloo on CPU)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and str(device or "auto") in ("auto", "cuda")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            device = torch.device("cpu")
    return rank, world, torch.device(device)


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def _all_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def _gather_rng(world: int, device: torch.device) -> dict[str, Tensor]:
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    if world == 1:
        return {f"rng/{k}/rank0": v for k, v in states.items()}
    out = {}
    for k, v in states.items():
        parts = [torch.empty_like(v.to(device)) for _ in range(world)]
        torch.distributed.all_gather(parts, v.to(device))
        out.update({f"rng/{k}/rank{r}": p.cpu() for r, p in enumerate(parts)})
    return out


def _set_rng(tensors: dict[str, Tensor], state: dict[str, Any], rank: int, device: torch.device) -> None:
    key = f"rng/torch/rank{rank}"
    if key not in tensors:
        raise CheckpointError(f"the checkpoint has no RNG state for rank {rank}; it was written by fewer processes")
    torch.set_rng_state(tensors[key])
    if device.type == "cuda" and f"rng/cuda/rank{rank}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng/cuda/rank{rank}"], device)
    py = state["python_rng"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy_rng"]
    np.random.set_state((np_state[0], tensors["rng/numpy"].numpy().astype(np.uint32), *np_state[1:]))


def _host_rng() -> tuple[dict[str, Tensor], dict[str, Any]]:
    py = random.getstate()
    ns = np.random.get_state()
    return (
        {"rng/numpy": torch.from_numpy(ns[1].astype(np.int64))},
        {"python_rng": [py[0], list(py[1]), py[2]], "numpy_rng": [ns[0], int(ns[2]), int(ns[3]), float(ns[4])]},
    )


# --------------------------------------------------------------------------------------------------- run dir


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a crash ends the valid log
    return records


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += _diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}: {a.get(k)!r} (run) vs {b.get(k)!r} (now)")
    return out


def _run_identity(run_config: dict[str, Any]) -> dict[str, Any]:
    ident = json.loads(json.dumps(run_config))
    for k in _FREE_FIELDS:
        ident.get("train", {}).pop(k, None)
    ident.pop("world_size", None)
    return ident


class _Log:
    """Appends JSON lines to metrics.jsonl (rank 0 only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()


# ------------------------------------------------------------------------------------------------------- fit


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


def _checkpoint(run_dir, done, net, optimizer, cfg, world, dev, rank, n, labels) -> None:
    rng = _gather_rng(world, dev)  # every rank takes part in the gather
    if rank == 0:
        opt_tensors, opt_desc = optimizer_to_tensors(optimizer)
        host_tensors, host_state = _host_rng()
        state = {"position": done * cfg.batch_size, "train_size": n, "optimizer": opt_desc, "schedule_step": done, **host_state}
        save_training_checkpoint(
            run_dir / "checkpoints", done, net, {**opt_tensors, **rng, **host_tensors}, state, keep=cfg.keep,
            extra_metadata={"class_names": json.dumps(labels)},
        )
    _barrier(world)


def _prepare_run_dir(run_dir, run_config, resume, rank, world, net, optimizer, dev, n) -> int:
    """Create or reopen the run directory; on resume load the newest checkpoint and return its step."""
    cfg_path = run_dir / "config.json"
    existing = cfg_path.is_file()
    if existing and not resume:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if existing:
        try:
            stored = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg_path} is corrupt: {e}") from None
        diffs = _diff(_run_identity(stored), _run_identity(run_config))
        if diffs:
            raise CheckpointError(
                f"cannot resume {run_dir}: the settings differ from the run's, so the result would not be the same run: "
                + "; ".join(diffs[:8])
            )
    _barrier(world)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not existing:
            atomic_write_bytes(cfg_path, (json.dumps(run_config, indent=2, sort_keys=True) + "\n").encode())
    _barrier(world)
    ckpts = list_training_checkpoints(run_dir / "checkpoints") if resume else []
    step = 0
    if ckpts:
        step = _load_checkpoint(ckpts[-1], net, optimizer, rank, dev, n)
    if rank == 0 and resume:
        # Drop log lines written after the checkpoint (they will be written again) and any line cut by a crash.
        keep = [r for r in _read_metrics(run_dir / "metrics.jsonl") if r.get("step", 0) <= step]
        atomic_write_bytes(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in keep).encode())
        print(f"resuming {run_dir} from step {step}" if ckpts else f"no checkpoint in {run_dir}; starting from step 0", flush=True)
    _barrier(world)
    return step


def _load_checkpoint(path: Path, net, optimizer, rank, dev, n) -> int:
    from multiseq.config import ModelConfig as _MC

    model_tensors, model_meta, tensors, state = read_training_checkpoint(path)
    stored = _MC.from_json(model_meta["config"])
    diffs = _diff(stored.to_dict(), net.config.to_dict())
    if diffs:
        raise CheckpointError(f"checkpoint {path} was saved with a different model config: " + "; ".join(diffs[:8]))
    if state.get("train_size") != n:
        raise CheckpointError(f"checkpoint {path} was trained on {state.get('train_size')} examples, the data now has {n}")
    load_tensors(net, {k: v.to(dev) for k, v in model_tensors.items()}, str(path))
    names_now = [g["names"] for g in optimizer.param_groups]
    names_then = [g.get("names") for g in state["optimizer"]["param_groups"]]
    if names_now != names_then:
        raise CheckpointError(f"checkpoint {path}: the optimiser's parameter groups do not match this model")
    osd = optimizer_from_tensors(tensors, state["optimizer"])
    optimizer.load_state_dict(osd)
    _set_rng(tensors, state, rank, dev)
    return int(state["step"])


def _finish_run(run_dir: Path, net, labels, last) -> None:
    save_model(net, run_dir / "model.safetensors", extra_metadata={"class_names": json.dumps(labels)})
    records = _read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r.get("kind") == "eval"]
    if evals and "eval" not in last:
        last["eval"] = evals[-1]
    try:
        from multiseq.plots import plot_confusion, plot_curves
    except ImportError as e:  # matplotlib is optional ([plot] extra)
        print(f"plots skipped: {e}")
        return
    plot_curves(records, run_dir / "curves.png")
    if evals:
        plot_confusion(evals[-1]["confusion"], labels, run_dir / "confusion.png")

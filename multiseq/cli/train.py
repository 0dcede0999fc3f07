"""`multiseq train` (`eval` and `predict` live in multiseq/cli/evaluate.py).

    multiseq train --task listops --model s4d_lra_listops --steps 2000 --out runs/listops
    torchrun --nproc_per_node=2 -m multiseq.cli train ...     # DDP, gloo on CPU / NCCL on GPUs

A task is a name known to `multiseq.tasks.get`, or `module:function` returning a dataset for
`function(split=..., **options)` (any object with `len()` and `ds[i] -> (input, label)`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from multiseq.cli._args import _chance, _kv, _task_args, _task_options, _threads  # noqa: F401  (shared options)
from multiseq.tasks import load_task


# ------------------------------------------------------------------------------------------------------ train


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    _task_args(p, required=True)
    p.add_argument("--model", required=True, help="preset name (multiseq models) e.g. s4d_lra_listops")
    p.add_argument("--model-option", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config field (JSON value), e.g. --model-option width=64")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="optimiser steps")
    g.add_argument("--epochs", type=float, help="passes over the training set")
    p.add_argument("--batch-size", type=int, help="global batch per step (default 32 or the preset's recipe)")
    p.add_argument("--accumulate", type=int, default=1, help="gradient accumulation micro-batches per step")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--adam-eps", type=float, default=1e-8, help="AdamW epsilon")
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (bit-exact resume on CPU)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--out", default=None, help="run directory (default runs/<task>-<model>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: only at the end)")
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept")
    p.add_argument("--eval-every", type=int, default=0, help="steps between validation passes (0: only at the end)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--train-limit", type=int, help="use only the first N training examples")
    p.add_argument("--val-limit", type=int, help="use only the first N validation examples")
    p.add_argument("--val-split", default="val", help="split evaluated during training ('none' to skip)")
    p.add_argument("--test", action="store_true", help="also evaluate the test split at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bars; plain log lines (for log files)")


def run_train(args: argparse.Namespace) -> int:
    from multiseq.train import TrainConfig, evaluate, fit

    _threads(args)
    recipe = _recipe(args.model)
    opts = _task_options(args)
    train = load_task(args.task, "train", opts, args.train_limit, progress=not args.quiet)
    val = None if args.val_split == "none" else load_task(args.task, args.val_split, opts, args.val_limit, not args.quiet)
    steps, epochs = args.steps, args.epochs
    if steps is None and epochs is None:
        epochs = recipe.get("epochs", 1.0)
    cfg = TrainConfig(
        steps=steps,
        epochs=epochs,
        batch_size=args.batch_size or recipe.get("batch_size", 32),
        accumulate=args.accumulate,
        eps=args.adam_eps,
        lr=args.lr or recipe.get("lr", 1e-3),
        weight_decay=args.weight_decay if args.weight_decay is not None else recipe.get("weight_decay", 0.01),
        warmup_steps=args.warmup_steps if args.warmup_steps is not None else recipe.get("warmup_steps"),
        grad_clip=args.grad_clip,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        deterministic=args.deterministic,
        precision=args.precision,
        log_every=args.log_every,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        keep=args.keep,
        eval_batch_size=args.eval_batch_size,
        num_workers=args.num_workers,
    )
    model = args.model
    if args.model_option:
        from multiseq.models import get_model_config

        model = get_model_config(args.model, **dict(args.model_option))
    out = args.out or f"runs/{args.task.replace(':', '_')}-{args.model}"
    task_info = {"task": args.task, "options": opts, "train_limit": args.train_limit, "train_size": len(train)}
    result = fit(model, train, val, config=cfg, out=out, resume=args.resume, progress=not args.quiet,
                 device=args.device, task_info=task_info)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    ev = result.metrics.get("eval")
    if ev:
        print(f"val accuracy {ev['accuracy']:.4f} (chance {_chance(ev):.4f}, n={ev['n']})")
    if args.test:
        test = load_task(args.task, "test", opts)
        res = evaluate(result.model, test, cfg.eval_batch_size or cfg.batch_size, progress=not args.quiet)
        print(f"test accuracy {res['accuracy']:.4f} (chance {_chance(res):.4f}, n={res['n']})")
        _append(Path(out) / "metrics.jsonl", {"kind": "eval", "split": "test", "step": cfg.total_steps(len(train)), **res})
    print(f"run directory: {out}")
    return 0


def _recipe(model: str) -> dict[str, Any]:
    try:
        from multiseq.presets.lra import recipe
    except ImportError:
        return {}
    return recipe(model) or {}


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")

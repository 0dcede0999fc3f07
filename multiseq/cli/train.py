"""`multiseq train` and `multiseq pretrain` (`eval` and `predict` live in multiseq/cli/evaluate.py).

    multiseq train --task listops --model s4d_lra_listops --steps 2000 --out runs/listops
    multiseq pretrain --task listops --model s4d_lra_listops --budget-minutes 10 --out runs/listops-spt
    multiseq train --task listops --init runs/listops-spt --budget-minutes 20 --out runs/listops-ft
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


# ------------------------------------------------------------------------------------------------------ shared


def add_run_arguments(p: argparse.ArgumentParser, model_required: bool = True) -> None:
    """Options of every training stage (`train`, `pretrain`): task, model, length, optimiser, run directory."""
    _task_args(p, required=True)
    p.add_argument("--model", required=model_required, help="preset name (multiseq models) e.g. s4d_lra_listops")
    p.add_argument("--model-option", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config field (JSON value), e.g. --model-option width=64")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="optimiser steps")
    g.add_argument("--epochs", type=float, help="passes over the training set")
    p.add_argument("--budget-minutes", type=float,
                   help="wall-clock budget of the optimiser steps: the step count is fixed from the first steps' "
                        "timing (capped by --steps/--epochs if given); evaluation time does not count")
    p.add_argument("--batch-size", type=int, help="global batch per step (default 32 or the preset's recipe)")
    p.add_argument("--accumulate", type=int, default=1, help="gradient accumulation micro-batches per step")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-3 or the preset's recipe)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--adam-eps", type=float, default=1e-8, help="AdamW epsilon")
    p.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default 5%% of the run)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0 disables clipping)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (bit-exact resume on CPU)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="auto: bf16 autocast on CUDA, fp32 on CPU; bf16 on CPU only where torch supports it")
    p.add_argument("--out", default=None, help="run directory (default runs/<task>-<model>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: only at the end)")
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept")
    p.add_argument("--log-every", type=int, default=10, help="steps between log lines (0: only at the end)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--train-limit", type=int, help="use only N training examples")
    p.add_argument("--quiet", action="store_true", help="no progress bars; plain log lines (for log files)")


def _train_config(args: argparse.Namespace, recipe: dict[str, Any], **extra: Any) -> Any:
    """A `TrainConfig` from the shared options; the recipe fills only what the user did not give (0 included)."""
    from multiseq.train import TrainConfig

    def pick(value: Any, key: str, default: Any) -> Any:
        return value if value is not None else recipe.get(key, default)

    steps, epochs, budget = args.steps, args.epochs, args.budget_minutes
    if steps is None and epochs is None and budget is None:
        budget = recipe.get("budget_minutes")
        epochs = None if budget is not None else recipe.get("epochs", 1.0)
    return TrainConfig(
        steps=steps, epochs=epochs, budget_minutes=budget,
        batch_size=pick(args.batch_size, "batch_size", 32), accumulate=args.accumulate, eps=args.adam_eps,
        lr=pick(args.lr, "lr", 1e-3), weight_decay=pick(args.weight_decay, "weight_decay", 0.01),
        warmup_steps=pick(args.warmup_steps, "warmup_steps", None), grad_clip=args.grad_clip, seed=args.seed,
        deterministic=args.deterministic, precision=args.precision, log_every=args.log_every,
        checkpoint_every=args.checkpoint_every, keep=args.keep, num_workers=args.num_workers, **extra,
    )


def _model(args: argparse.Namespace) -> Any:
    if args.model is None:
        return None
    if args.model_option:
        from multiseq.models import get_model_config

        return get_model_config(args.model, **dict(args.model_option))
    return args.model


def _out(args: argparse.Namespace, stage: str) -> str:
    if args.out is not None:
        return args.out
    name = args.model or Path(args.init).name
    return f"runs/{args.task.replace(':', '_')}-{name}{'-' + stage if stage != 'train' else ''}"


# ------------------------------------------------------------------------------------------------------ train


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p, model_required=False)
    p.add_argument("--init", help="start from a pretrained body: a run directory or .safetensors model file "
                                  "(from `multiseq pretrain` or `train`); the head is fresh; --model optional")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=0, help="steps between validation passes (0: only at the end)")
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--val-limit", type=int, help="use only N validation examples")
    p.add_argument("--val-split", default="val", help="split evaluated during training ('none' to skip)")
    p.add_argument("--test", action="store_true", help="also evaluate the test split at the end")


def run_train(args: argparse.Namespace) -> int:
    from multiseq.errors import ConfigError
    from multiseq.train import evaluate, fit

    if args.model is None and args.init is None:
        raise ConfigError("give --model (a preset name), or --init with a pretrained run")
    _threads(args)  # --threads and --device are checked by multiseq.cli.main
    recipe = _recipe(args.model) if args.model else {}
    cfg = _train_config(args, recipe, label_smoothing=args.label_smoothing, eval_every=args.eval_every,
                        eval_batch_size=args.eval_batch_size)
    opts = _task_options(args)
    train = load_task(args.task, "train", opts, args.train_limit, progress=not args.quiet)
    val = None if args.val_split == "none" else load_task(args.task, args.val_split, opts, args.val_limit, not args.quiet)
    out = _out(args, "train")
    task_info = {"task": args.task, "options": opts, "train_limit": args.train_limit, "train_size": len(train)}
    result = fit(_model(args), train, val, config=cfg, init=args.init, out=out, resume=args.resume,
                 progress=not args.quiet, device=args.device, task_info=task_info)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    ev = result.metrics.get("eval")
    if ev:
        print(f"val accuracy {ev['accuracy']:.4f} (chance {_chance(ev):.4f}, n={ev['n']})")
    if args.test:
        test = load_task(args.task, "test", opts)
        res = evaluate(result.model, test, cfg.eval_batch_size or cfg.batch_size, progress=not args.quiet)
        print(f"test accuracy {res['accuracy']:.4f} (chance {_chance(res):.4f}, n={res['n']})")
        _append(Path(out) / "metrics.jsonl", {"kind": "eval", "split": "test", "step": result.metrics["train"]["step"], **res})
    print(f"run directory: {out}")
    return 0


# --------------------------------------------------------------------------------------------------- pretrain


def add_pretrain_arguments(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p)
    p.add_argument("--objective", default="auto", choices=["auto", "masked", "causal"],
                   help="masked modelling, causal next-input prediction, or auto (causal for causal models)")
    p.add_argument("--mask-ratio", type=float, help="fraction of inputs masked (default per adapter: 0.15 bytes, "
                                                    "0.10 ListOps, 0.25 rendered text, 0.5 pixels and patches)")
    p.add_argument("--span", type=int, help="masked windows come in runs of this many (default per adapter)")
    p.add_argument("--raw-targets", action="store_true", help="do not normalise reconstructed patches (MAE-style)")


def run_pretrain(args: argparse.Namespace) -> int:
    from multiseq.train import PretrainConfig, pretrain

    objective = PretrainConfig(objective=args.objective, mask_ratio=args.mask_ratio, span=args.span,
                               normalize_targets=not args.raw_targets)
    _threads(args)  # --threads and --device are checked by multiseq.cli.main
    cfg = _train_config(args, _recipe(args.model))
    opts = _task_options(args)
    train = load_task(args.task, "train", opts, args.train_limit, progress=not args.quiet)  # the train split only
    out = _out(args, "pretrain")
    task_info = {"task": args.task, "options": opts, "train_limit": args.train_limit, "train_size": len(train),
                 "split": "train"}
    result = pretrain(_model(args), train, config=cfg, objective=objective, out=out, resume=args.resume,
                      progress=not args.quiet, device=args.device, task_info=task_info)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    tr = result.metrics.get("train", {})
    acc = f", token accuracy {tr['accuracy']:.4f}" if "accuracy" in tr else ""
    print(f"pretraining loss {tr.get('loss', float('nan')):.4f}{acc} after {tr.get('step', 0)} steps")
    print(f"run directory: {out}  (fine-tune with: multiseq train --task {args.task} --init {out} ...)")
    return 0


def _recipe(model: str) -> dict[str, Any]:
    """The preset's training defaults: a CPU recipe (`presets.cpu`) or an LRA paper's set-up (`presets.lra`)."""
    from multiseq.presets import cpu, lra

    return cpu.recipe(model) or lra.recipe(model) or {}


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")

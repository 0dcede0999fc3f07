"""`multiseq eval` and `multiseq predict`: read a trained model (run directory or `.safetensors` file); never write
into the run.

    multiseq eval runs/listops                        # the task and its options recorded in the run
    multiseq eval --model runs/listops --task listops --split test --limit 500
    multiseq predict runs/imdb "a fine film" "dull"   # prints class names (pos / neg)
    multiseq predict --model runs/listops --task listops --split test --index 0 1 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from multiseq.cli._args import _chance, _kv, _task_args, _task_options, _threads
from multiseq.errors import ConfigError, InputError
from multiseq.tasks import load_task


def _model_args(p: argparse.ArgumentParser) -> None:
    # `--model` everywhere; the positional form of earlier releases stays as an alias.
    p.add_argument("model_pos", nargs="?", metavar="MODEL", help="run directory or .safetensors model file")
    p.add_argument("--model", help="run directory or .safetensors model file (same as the positional MODEL)")


def _model_path(args: argparse.Namespace) -> str:
    if args.model and args.model_pos and hasattr(args, "inputs"):
        args.inputs.insert(0, args.model_pos)  # `predict --model RUN text...`: the first text was taken as MODEL
    elif args.model and args.model_pos:
        raise ConfigError(f"give the model once: positional {args.model_pos!r} or --model {args.model!r}")
    path = args.model or args.model_pos
    if not path:
        raise ConfigError("give the model: a run directory or .safetensors file (MODEL or --model PATH)")
    return path


def _load(path: str, device: str | None) -> tuple[Any, list[str]]:
    from multiseq.checkpoint import load_model, read_checkpoint, resolve_model_file

    file = resolve_model_file(path)
    model = load_model(file, device=None if device in (None, "auto") else device)
    _, meta = read_checkpoint(file)
    labels = json.loads(meta.get("class_names", "null"))
    if not labels and "estimator" in meta:  # a classifier saved before class_names was written beside it
        labels = [str(c) for c in json.loads(meta["estimator"]).get("classes", [])]
    return model, labels or [str(i) for i in range(model.config.num_classes)]


def recorded_task(path: str) -> dict[str, Any] | None:
    """The task a run was trained on (`config.json` "task": name and options), or None for a bare model file."""
    p = Path(path)
    cfg = p / "config.json" if p.is_dir() else None
    if cfg is None and p.name == "model.safetensors" and (p.parent / "config.json").is_file():
        cfg = p.parent / "config.json"
    if cfg is None or not cfg.is_file():
        return None
    try:
        task = json.loads(cfg.read_text()).get("task")
    except json.JSONDecodeError:
        return None
    return task if isinstance(task, dict) and task.get("task") else None


def _task_and_options(args: argparse.Namespace, path: str) -> tuple[str, dict[str, Any]]:
    opts = _task_options(args)
    if args.task:
        return args.task, opts
    rec = recorded_task(path)
    if rec is None:
        raise ConfigError(f"{path} records no task; give --task NAME (and --task-option KEY=VALUE as in training)")
    return rec["task"], {**(rec.get("options") or {}), **opts}


# ------------------------------------------------------------------------------------------------------- eval


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    _task_args(p, required=False)
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="evaluate a seeded, class-balanced subset of N examples")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit subset")
    p.add_argument("--confusion", help="write a confusion-matrix PNG here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true")


def run_eval(args: argparse.Namespace) -> int:
    from multiseq.train import evaluate

    _threads(args)
    path = _model_path(args)
    model, labels = _load(path, args.device)
    task, opts = _task_and_options(args, path)
    data = load_task(task, args.split, opts, args.limit, seed=args.seed)
    res = evaluate(model, data, args.batch_size, progress=not args.quiet)
    res["chance"] = _chance(res)
    if args.confusion:
        from multiseq.plots import plot_confusion

        plot_confusion(res["confusion"], labels, args.confusion)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{args.split} accuracy {res['accuracy']:.4f} (chance {res['chance']:.4f}), loss {res['loss']:.4f}, n={res['n']}")
    return 0


# ---------------------------------------------------------------------------------------------------- predict


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("inputs", nargs="*", help="texts (byte models) or image files (pixel/patch models)")
    p.add_argument("--task", help="predict examples of a task split instead of given inputs (with --index)")
    p.add_argument("--task-option", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data")
    p.add_argument("--split", default="test")
    p.add_argument("--index", type=int, nargs="+", default=[0], help="example indices of the task split")
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="one JSON object per input")


def run_predict(args: argparse.Namespace) -> int:
    from multiseq.train import predict

    _threads(args)
    path = _model_path(args)
    model, labels = _load(path, args.device)
    truths: list[Any] = []
    if args.task:
        data = load_task(args.task, args.split, _task_options(args))
        items = [data[i] for i in args.index]
        raws, truths = [r for r, _ in items], [int(y) for _, y in items]
        shown = [f"{args.split}[{i}]" for i in args.index]
    elif args.inputs:
        raws = [_read_input(x, model) for x in args.inputs]
        shown = [x if len(x) < 60 else x[:57] + "..." for x in args.inputs]
    else:
        raise ConfigError("give inputs to predict, or --task NAME with --index")
    if model.is_dual:
        if not all(isinstance(r, (tuple, list)) and len(r) == 2 for r in raws):
            raise ConfigError("this model compares two documents; predict pairs with --task NAME --index I")
        pred, probs = predict(model, [r[0] for r in raws], inputs2=[r[1] for r in raws])
    else:
        pred, probs = predict(model, raws)
    for k, (name, c, p) in enumerate(zip(shown, pred.tolist(), probs.tolist())):
        rec = {"input": name, "label": labels[c] if c < len(labels) else c, "class": c, "probability": p[c]}
        if truths:
            rec["true_class"] = truths[k]
        if args.json:
            print(json.dumps(rec))
        else:
            truth = f"  (true: {labels[truths[k]]})" if truths else ""
            print(f"{name}: {rec['label']}  p={p[c]:.3f}{truth}")
    return 0


def _read_input(text: str, model: Any) -> Any:
    # Pixel and patch models take images: the argument is then a file path.
    if model.config.adapter.kind in ("pixels", "patches"):
        from PIL import Image

        if not Path(text).is_file():
            raise InputError(f"this model reads images; {text!r} is not an image file")
        try:
            with Image.open(text) as im:
                im.load()
                return im.copy()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # PIL's decode failures
            raise InputError(f"{text}: not a readable image ({type(e).__name__}: {e})") from None
    return text

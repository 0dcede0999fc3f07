"""What every example shares: the command line, the training run, and the summary it writes.

Each example builds its datasets with `multiseq.tasks.get`, picks a preset, and calls `run(...)`, which trains
with `multiseq.train.fit` (writing `config.json`, `metrics.jsonl`, `curves.png`, `confusion.png` and
`model.safetensors` into `--out`), evaluates, and writes `metrics.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from multiseq.tasks import Subset


class View(Subset):
    """`multiseq.tasks.Subset` (seeded, class-balanced) with the example's class names and an optional function
    applied to each input (e.g. rendering or cleaning text)."""

    def __init__(self, ds: Any, names: list[str], size: int | None = None, seed: int = 0,
                 transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__(ds, size, seed)
        self.label_names, self.transform = list(names), transform

    def __getitem__(self, i: int) -> tuple[Any, int]:
        raw, label = super().__getitem__(i)
        return (self.transform(raw) if self.transform else raw), label


def labels_of(view: Any) -> Any:
    """The labels of a `View` (or other `Subset`) in its order, or None when its dataset has no `labels`."""
    labels = getattr(getattr(view, "data", None), "labels", None)
    indices = getattr(view, "indices", None)
    if labels is None or indices is None or len(labels) != len(view.data):
        return None
    return [labels[i] for i in indices]


def parser(description: str, model: str, steps: int, batch_size: int, lr: float = 1e-3,
           weight_decay: float = 0.01) -> argparse.ArgumentParser:
    """The shared options; an example adds its own (data sizes, lengths)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--tiny", action="store_true", help="a few steps on a few examples (under a minute on CPU)")
    p.add_argument("--out", default=None, help="output folder (metrics, plots, samples, model); default runs/<example>")
    p.add_argument("--model", default=model, help=f"preset name (default {model})")
    p.add_argument("--steps", type=int, default=steps, help=f"optimiser steps (default {steps}; see --budget-minutes)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="wall-clock budget of the whole run (pretraining included); replaces --steps")
    p.add_argument("--pretrain-fraction", type=float, default=0.0,
                   help="share of the budget spent self-pretraining on the training inputs first (0 = from scratch)")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--weight-decay", type=float, default=weight_decay)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="data root or archive (default: the task's own default)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (data preparation runs there)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast on CUDA, fp32 on CPU; bf16 also on CPUs with bf16 instructions")
    p.add_argument("--quiet", action="store_true", help="plain log lines instead of progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    return p


def check_budget(args: argparse.Namespace) -> None:
    """Refuse budget settings that cannot run (zero is never silently replaced by a default)."""
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise SystemExit(f"--budget-minutes must be > 0, got {args.budget_minutes}")
    if not 0.0 <= args.pretrain_fraction < 1.0:
        raise SystemExit(f"--pretrain-fraction must lie in [0, 1), got {args.pretrain_fraction}")
    if args.pretrain_fraction > 0 and args.budget_minutes is None:
        raise SystemExit("--pretrain-fraction splits a budget: give --budget-minutes too")


RUN_FILES = ("config.json", "metrics.jsonl", "metrics.json", "model.safetensors", "curves.png", "confusion.png")


def out_dir(args: argparse.Namespace, name: str) -> Path:
    """The output folder; a previous run there is refused unless `--overwrite` (then its files are removed)."""
    import shutil

    path = Path(args.out or f"runs/{name}")
    if (path / "config.json").exists() or (path / "pretrain").exists():
        if not args.overwrite:
            raise SystemExit(f"{path} already holds a run; choose another --out or pass --overwrite")
        for f in RUN_FILES:
            (path / f).unlink(missing_ok=True)
        shutil.rmtree(path / "checkpoints", ignore_errors=True)
        shutil.rmtree(path / "pretrain", ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(
    args: argparse.Namespace,
    name: str,
    train: Any,
    val: Any,
    *,
    model_overrides: dict[str, Any] | None = None,
    samples: Callable[[Path], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `args.model` on `train`, evaluate on `val`, write samples and `metrics.json` into the output folder.

    Returns:
        The summary written to `metrics.json` (`val_accuracy`, `val_loss`, sizes, steps, seconds, ...).
    """
    from multiseq.train import TrainConfig, evaluate, fit, model_for_data, pretrain

    check_budget(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = out_dir(args, name)
    if samples is not None:
        samples(out)
    budget = args.budget_minutes
    pre_minutes = budget * args.pretrain_fraction if budget else 0.0

    def config(minutes: float | None) -> TrainConfig:
        steps = None if minutes else args.steps
        return TrainConfig(
            steps=steps, budget_minutes=minutes or None, batch_size=args.batch_size, lr=args.lr,
            weight_decay=args.weight_decay, seed=args.seed, log_every=max(1, (steps or 400) // 20), eval_every=0,
            num_workers=args.workers, warmup_steps=min(30, max(1, (steps or 600) // 20)), precision=args.precision,
        )

    t0 = time.perf_counter()
    model = model_for_data(args.model, train, device=args.device, **(model_overrides or {}))
    init, pre_summary = None, {}
    if pre_minutes:
        pre = pretrain(model, train, config=config(pre_minutes), out=out / "pretrain", progress=not args.quiet,
                       device=args.device, task_info={"example": name, "train_size": len(train), "split": "train"})
        init, model = out / "pretrain", None
        pre_summary = {"pretrain_steps": pre.metrics.get("train", {}).get("step"),
                       "pretrain_seconds": round(time.perf_counter() - t0, 1)}
    t1 = time.perf_counter()
    result = fit(model, train, val, config=config(budget - pre_minutes if budget else None), init=init, out=out,
                 progress=not args.quiet, device=args.device,
                 task_info={"example": name, "train_size": len(train), "val_size": len(val)})
    train_s = time.perf_counter() - t0
    steps = result.metrics.get("train", {}).get("step", args.steps)
    metrics = evaluate(result.model, val, batch_size=args.batch_size, num_workers=args.workers)
    summary = {
        "example": name,
        "model": args.model,
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "budget_minutes": budget,
        "pretrain_fraction": args.pretrain_fraction,
        **pre_summary,
        "steps": steps,
        "batch_size": args.batch_size,
        "samples_seen": steps * args.batch_size,
        "finetune_seconds": round(time.perf_counter() - t1, 1),
        "train_size": len(train),
        "val_size": len(val),
        "val_accuracy": metrics["accuracy"],
        "val_loss": metrics["loss"],
        "train_seconds": round(train_s, 1),
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "tiny": bool(args.tiny),
        "out": str(out),
        **(extra or {}),
    }
    train_labels, val_labels = labels_of(train), labels_of(val)
    if train_labels is not None and val_labels is not None and len(train_labels) and len(val_labels):
        from multiseq.baselines import majority_accuracy

        summary["majority_val_accuracy"] = majority_accuracy(train_labels, val_labels)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{name}: val accuracy {metrics['accuracy']:.4f} on {len(val)} examples after {steps} steps "
          f"({train_s:.0f} s); outputs in {out}")
    return summary


def text_baseline(train: Any, val: Any, summary: dict[str, Any]) -> None:
    """Fit TF-IDF + logistic regression on the same training texts, score it on the same validation texts, print
    it beside the model's accuracy and add it to `metrics.json`."""
    from multiseq.baselines import majority_accuracy
    from multiseq.baselines import text_baseline as fit_baseline

    tr = [train[i] for i in range(len(train))]
    va = [val[i] for i in range(len(val))]
    base = fit_baseline([t for t, _ in tr], [y for _, y in tr], [t for t, _ in va], [y for _, y in va])
    summary.update(tfidf_val_accuracy=base.accuracy, tfidf_seconds=round(base.seconds, 1),
                   majority_val_accuracy=majority_accuracy([y for _, y in tr], [y for _, y in va]))
    (Path(summary["out"]) / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"reference on the same split: TF-IDF + logistic regression {base.accuracy:.4f} ({base.seconds:.0f} s), "
          f"majority class {summary['majority_val_accuracy']:.4f}")


def write_text_samples(path: Path, rows: list[tuple[Any, Any]], limit: int = 8, width: int = 300) -> None:
    """A readable file of a few raw inputs and their labels."""
    lines = []
    for raw, label in rows[:limit]:
        text = " ||| ".join(map(str, raw)) if isinstance(raw, (tuple, list)) else str(raw)
        lines.append(f"[label {label}] {text[:width]}{'...' if len(text) > width else ''}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def image_samples(val: Any, names: list[str], count: int = 16) -> Callable[[Path], None]:
    """The `samples` writer of an image example: a grid of the first `count` validation images and their labels."""

    def write(out: Path) -> None:
        rows = [val[i] for i in range(min(count, len(val)))]
        save_image_grid(out / "samples.png", [r[0] for r in rows], [r[1] for r in rows], names)

    return write


# Gray levels of a 32 x 32 image as values (a linear embedding), the recipes' adapter, not the tasks' 256 tokens.
GRAY_VALUES_32 = {"kind": "pixels", "max_length": 1024, "options": {"image_size": [32, 32], "as_tokens": False}}


def save_image_grid(path: Path, images: list[Any], labels: list[Any], names: list[str] | None = None) -> None:
    """A grid of sample images with their labels (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(images)
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, lbl in zip(axes.flat, images, labels):
        a = np.asarray(img)
        ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(names[int(lbl)] if names else str(lbl), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

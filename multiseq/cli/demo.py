"""`multiseq demo` (`make demo`): the main job on a built-in task, with no downloads.

1. Generate a small ListOps set with LRA's generator (`multiseq.tasks.listops`): nested MIN / MAX / MEDIAN /
   SUM-MOD-10 lists, 10 classes. LRA's lists have 500-2,000 tokens, which on 2 CPU cores take far longer than a
   demo may (about 8 samples/s for a small S4D); the demo uses the same generator with shallower trees (depth <= 5,
   at most 5 arguments, 50-400 tokens), about 60 tokens on average.
2. Train a small long-range model (S4D: the `s4d_lra_listops` preset shrunk to width 64, depth 2) for a few minutes.
3. Evaluate on held-out lists and compare with chance (uniform, and always guessing the most frequent class).
4. Keep the run directory (config, metrics, checkpoints, model, curves.png, confusion.png).
5. Show `multiseq predict` on test lists and on a list typed by hand.

The tasks themselves live in `multiseq.tasks.toy` (`listops_short`, and `count_task`, used by the README and the tests).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from multiseq.tasks.listops import tokens
from multiseq.tasks.toy import listops_short


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="run directory (replaced if it holds an earlier demo)")
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--eval-size", type=int, default=500)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--model", default="s4d_lra_listops")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: 2 on an idle machine, 1 when the cores are already busy)")
    p.add_argument("--quiet", action="store_true", help="log lines instead of progress bars")


def _header(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    from multiseq.models import get_model_config
    from multiseq.train import evaluate, fit

    threads = args.threads if args.threads is not None else _auto_threads()
    torch.set_num_threads(threads)
    t0 = time.time()
    out = Path(args.out)
    _header(f"1. generating ListOps (depth <= 5, 50-400 tokens): {args.train_size} train / {args.eval_size} val / "
            f"{args.eval_size} test lists")
    train = listops_short("train", args.train_size, seed=args.seed, progress=not args.quiet)
    val = listops_short("val", args.eval_size, seed=args.seed)
    test = listops_short("test", args.eval_size, seed=args.seed)
    lengths = [len(tokens(train[i][0])) for i in range(len(train))]
    print(f"   e.g. {_short(train[0][0])}  -> {train[0][1]}")
    print(f"   {min(lengths)}-{max(lengths)} tokens, mean {sum(lengths) / len(lengths):.0f}  ({time.time() - t0:.0f} s)")

    config = get_model_config(args.model, width=args.width, depth=args.depth)
    _header(f"2. training {args.model} at width {args.width}, depth {args.depth}: {args.steps} steps of "
            f"{args.batch_size} lists on {threads} thread(s)")
    if (out / "config.json").is_file():
        shutil.rmtree(out)  # an earlier demo run; the demo always starts fresh
    t_train = time.time()
    result = fit(config, train, val, out=out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                 weight_decay=0.01, warmup_steps=args.steps // 20, seed=args.seed, eval_every=max(1, args.steps // 4),
                 checkpoint_every=max(1, args.steps // 4), progress=not args.quiet, log_every=25)
    train_s = time.time() - t_train
    params = sum(p.numel() for p in result.model.parameters())
    print(f"   {params / 1e3:.0f}K parameters, {train_s:.0f} s, {args.steps * args.batch_size / train_s:.1f} samples/s")

    _header("3. evaluating on held-out test lists")
    res = evaluate(result.model, test, batch_size=64, progress=not args.quiet)
    counts = [sum(row) for row in res["confusion"]]
    majority = max(counts) / sum(counts)
    print(f"   test accuracy {res['accuracy']:.3f}  vs chance: uniform {1 / res['num_classes']:.3f}, "
          f"most frequent class {majority:.3f}  (n={res['n']})")

    _header(f"4. run directory {out}/")
    for p in sorted(out.iterdir()):
        print(f"   {p.name}{'/' if p.is_dir() else ''}")
    print(f"   plots: {out / 'curves.png'} (loss, accuracy) and {out / 'confusion.png'}")

    _header("5. predicting with the saved model")
    examples = [test[i][0] for i in range(3)] + ["[MAX 2 9 [MIN 4 7 ] 0 ]"]
    truths = [test[i][1] for i in range(3)] + [9]
    cmd = ["multiseq", "predict", str(out), *examples]
    print("   $ " + shlex.join(["multiseq", "predict", str(out), *[_short(e, 30) for e in examples]]))
    r = subprocess.run([sys.executable, "-m", "multiseq.cli", *cmd[1:]], capture_output=True, text=True)
    lines = (r.stdout or r.stderr).splitlines()
    for line, truth in zip(lines, truths):
        print(f"   {_short(line.split(': ')[0], 40)}: {line.rsplit(': ', 1)[-1]}   (true: {truth})")
    for line in lines[len(truths):]:
        print(f"   {line}")
    verdict = "clearly above" if res["accuracy"] > majority + 0.05 else "NOT clearly above"
    print(f"\ndone in {time.time() - t0:.0f} s: test accuracy {res['accuracy']:.3f}, {verdict} chance "
          f"({majority:.3f} for the most frequent class, {1 / res['num_classes']:.3f} uniform)")
    return 0 if r.returncode == 0 else 1


def _auto_threads() -> int:
    # Two OpenMP threads on cores that other processes already fill spin against each other and run several
    # times slower than one (measured on a shared 2-core machine); use them only when the cores are free.
    cores = min(2, os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return cores if busy < (os.cpu_count() or 1) - 0.5 else 1


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."

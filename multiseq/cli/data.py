"""`multiseq data`: generate, inspect and preview the task data sets.

    multiseq data generate listops --split val --size 2000
    multiseq data generate pathfinder --split val --size 500 --workers 2
    multiseq data stats text --split val
    multiseq data preview pathfinder --split val --size 16 --out grid.png
    multiseq data preview listops --split val --size 1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from multiseq.errors import ConfigError

ACTIONS = ("generate", "stats", "preview")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="generate a data set, print its statistics, or preview samples")
    p.add_argument("task", help="task name (see `multiseq data stats list`), e.g. listops, pathfinder, pathx, text")
    p.add_argument("--split", default="train", help="train, val, test, or all (generate only)")
    p.add_argument("--size", type=int, default=None,
                   help="number of samples (generated tasks: made; read tasks: a seeded class-balanced subset)")
    p.add_argument("--seed", type=int, default=None, help="generator / split seed")
    p.add_argument("--data", "--root", dest="root", default=None,
                   help="data or cache folder (default $MULTISEQ_DATA or ~/.cache/multiseq); --root is an alias")
    p.add_argument("--workers", type=int, default=None, help="generator processes (default: all cores)")
    p.add_argument("--task-option", "--option", dest="option", action="append", default=[], metavar="KEY=VALUE",
                   help="task option, value parsed as JSON when it can be (repeatable); --option is an alias")
    p.add_argument("--out", default=None, help="preview: PNG file for an image grid (or text file for ListOps)")
    p.add_argument("--limit", type=int, default=None, help="stats: read at most this many items")


def _options(args: argparse.Namespace, generated: bool) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--task-option expects KEY=VALUE, got {item!r}")
        try:
            opts[key] = json.loads(value)
        except json.JSONDecodeError:
            opts[key] = value
    if args.size is not None:
        opts["size"] = args.size
    if args.seed is not None:
        opts["seed"] = args.seed
    if args.workers is not None and generated:
        opts["workers"] = args.workers
    return opts


def run_data(args: argparse.Namespace) -> int:
    from multiseq import tasks

    if args.task == "list":
        for name, desc in tasks.describe_tasks().items():
            print(f"{name:16s} {desc}")
        return 0
    generated = tasks.task_entry(args.task).generated
    opts = _options(args, generated)
    if args.action == "generate":
        return _generate(tasks, args, opts, generated)
    if args.split == "all":
        raise ConfigError("--split all is for generate; pick train, val or test")
    if args.action == "stats":
        return _stats(tasks, args, opts)
    return _preview(tasks, args, opts)


def _generate(tasks, args, opts, generated: bool) -> int:
    if not generated:
        raise ConfigError(f"{args.task} is read from real data, not generated; use `multiseq data stats {args.task}`")
    splits = ("train", "val", "test") if args.split == "all" else (args.split,)
    for split in splits:
        t0 = time.perf_counter()
        ds = tasks.get(args.task, split=split, root=args.root, progress=True, **opts)
        dt = time.perf_counter() - t0
        where = getattr(ds, "path", None) or getattr(ds, "base", None)
        print(f"{args.task} {split}: {len(ds)} samples at {where} in {dt:.1f} s "
              f"({len(ds) / max(dt, 1e-9):.1f} samples/s, including any already cached)")
    return 0


def _stats(tasks, args, opts) -> int:
    from multiseq.tasks.listops import tokens as listops_tokens

    t0 = time.perf_counter()
    ds = tasks.get(args.task, split=args.split, root=args.root, **opts)
    t_open = time.perf_counter() - t0
    n = len(ds) if args.limit is None else min(len(ds), args.limit)
    lengths, pixel_means = [], []
    t1 = time.perf_counter()
    for i in range(n):
        x, _ = ds[i]
        if isinstance(x, np.ndarray):
            pixel_means.append(float(x.mean()))
        elif isinstance(x, tuple):
            lengths += [len(d.encode("utf-8")) if isinstance(d, str) else len(d) for d in x]
        elif ds.adapter.kind == "listops":
            lengths.append(len(listops_tokens(x)))
        else:
            lengths.append(len(x.encode("utf-8")) if isinstance(x, str) else len(x))
    t_read = time.perf_counter() - t1
    counts = np.bincount(np.asarray(ds.labels, dtype=np.int64), minlength=ds.num_classes)
    print(f"{ds!r}")
    print(f"opened in {t_open:.2f} s; read {n} items in {t_read:.2f} s ({n / max(t_read, 1e-9):.0f} items/s, "
          f"1 process)")
    print("labels: " + " ".join(f"{k}:{c} ({c / max(len(ds), 1):.1%})" for k, c in enumerate(counts)))
    if lengths:
        L = np.asarray(lengths)
        unit = "tokens" if ds.adapter.kind == "listops" else "bytes"
        print(f"length ({unit}{', per document' if ds.pair else ''}): mean {L.mean():.0f}, median "
              f"{np.median(L):.0f}, min {L.min()}, max {L.max()}; over max_length {ds.adapter.max_length}: "
              f"{(L > ds.adapter.max_length).mean():.1%}")
    if pixel_means:
        print(f"images {ds[0][0].shape}, mean pixel {np.mean(pixel_means):.1f}")
    if ds.skipped:
        print(f"skipped {len(ds.skipped)} bad items")
    return 0


def _preview(tasks, args, opts) -> int:
    generated = tasks.task_entry(args.task).generated
    opts.setdefault("size", 16 if generated and args.task != "listops" else 1)
    ds = tasks.get(args.task, split=args.split, root=args.root, **opts)
    if ds.adapter.kind == "listops":
        from multiseq.tasks.listops import tree_text

        src, label = ds[0]
        text = f"label {label}\n{tree_text(src)}\n"
        if args.out:
            with open(args.out, "w") as fh:
                fh.write(text)
            print(f"wrote {args.out}")
        else:
            print(text, end="")
        return 0
    x0 = ds[0][0]
    if isinstance(x0, np.ndarray):
        out = args.out or f"{args.task}_{args.split}_preview.png"
        save_grid([ds[i] for i in range(min(len(ds), 64))], out)
        print(f"wrote {out} ({min(len(ds), 64)} samples, label under each)")
        return 0
    for i in range(min(len(ds), 3)):
        x, label = ds[i]
        docs = x if isinstance(x, tuple) else (x,)
        print(f"[{i}] label {label}: " + " || ".join(repr(d[:200]) for d in docs))
    return 0


def save_grid(items: list[tuple[np.ndarray, int]], path: str | os.PathLike, scale: int = 0) -> None:
    """Save images with their labels drawn under each as one PNG grid."""
    from PIL import Image, ImageDraw

    h, w = items[0][0].shape[:2]
    scale = scale or max(1, 96 // max(h, w))
    cols = int(np.ceil(np.sqrt(len(items))))
    rows = int(np.ceil(len(items) / cols))
    ch, cw = h * scale + 14, w * scale + 4
    grid = Image.new("RGB", (cols * cw, rows * ch), (40, 40, 40))
    draw = ImageDraw.Draw(grid)
    for k, (img, label) in enumerate(items):
        im = Image.fromarray(img).convert("RGB").resize((w * scale, h * scale), Image.NEAREST)
        r, c = divmod(k, cols)
        grid.paste(im, (c * cw + 2, r * ch + 2))
        draw.text((c * cw + 3, r * ch + h * scale + 2), str(label), fill=(255, 220, 0))
    grid.save(path)

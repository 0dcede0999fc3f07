"""`multiseq demo`: a small end-to-end job with no downloads.

Task: strings of 512 random letters from {a, b, c}; the label says whether `a` outnumbers `b`. Every position
matters, so the model must aggregate over the whole sequence. A tiny local-attention model is trained on CPU,
evaluated on held-out strings, and asked to predict two new ones.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

import multiseq


def make_split(n: int, length: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        s = "".join(rng.choice("abc") for _ in range(length))
        if s.count("a") == s.count("b"):
            s = "a" + s[1:] if s[0] != "a" else s[:-1] + "a"
        texts.append(s)
        labels.append(int(s.count("a") > s.count("b")))
    return texts, labels


def count_task(split: str = "train", n: int | None = None, length: int = 64, seed: int = 0):
    """The built-in "does `a` outnumber `b`" task as a dataset (`multiseq train --task multiseq.demo:count_task`).

    Args:
        split: `train` (default 512 strings), `val` or `test` (128 each); disjoint seeds.
        n: number of strings (overrides the split's default).
        length: characters per string.
        seed: base seed.
    """
    from multiseq.config import AdapterConfig
    from multiseq.train import InMemoryDataset

    offsets = {"train": 0, "val": 1, "test": 2}
    if split not in offsets:
        raise ValueError(f"split must be one of {sorted(offsets)}, got {split!r}")
    n = n if n is not None else (512 if split == "train" else 128)
    texts, labels = make_split(n, length, seed * 10 + offsets[split])
    return InMemoryDataset(texts, labels, 2, AdapterConfig("bytes", max_length=length), label_names=["b>=a", "a>b"], task="count")


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)


def run_demo(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    model = multiseq.create_model("local_bytes_tiny", num_classes=2, adapter={"max_length": args.length})
    train_x, train_y = make_split(2048, args.length, args.seed)
    val_x, val_y = make_split(512, args.length, args.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    t0, batch = time.time(), 32
    for step in range(args.steps):
        idx = [(step * batch + i) % len(train_x) for i in range(batch)]
        x, m = model.encode([train_x[i] for i in idx])
        loss = torch.nn.functional.cross_entropy(model(x, m), torch.tensor([train_y[i] for i in idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  {(step + 1) * batch / (time.time() - t0):.0f} samples/s")
    pred = torch.cat([model.predict(val_x[i : i + 128]) for i in range(0, len(val_x), 128)])
    acc = (pred == torch.tensor(val_y)).float().mean().item()
    print(f"validation accuracy {acc:.3f} (chance 0.5) on {len(val_x)} held-out strings")
    print("predict:", model.predict(["a" * 300 + "b" * 212, "b" * 300 + "a" * 212]).tolist(), "(expected [1, 0])")
    return 0

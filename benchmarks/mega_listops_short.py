"""A short CPU run showing that a `mega_chunk` preset learns LRA ListOps (generated, seeded).

    flock /tmp/multiseq-heavy.lock .venv/bin/python benchmarks/mega_listops_short.py --steps 300

Trains `mega_chunk_bytes_tiny` (adapted to the ListOps vocabulary by `model_for_data`) with AdamW (EMA
coefficients without weight decay through `mark_optim`), and reports validation accuracy against the majority-class
baseline of the same validation set. Sequences are the LRA ones (500..2,000 tokens), so information crosses the
128-token chunks only through the EMA.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


class _View(torch.utils.data.Dataset):
    """The dataset without its numpy `labels` array (which `fit` would read as class names)."""

    def __init__(self, ds) -> None:
        self.ds, self.adapter, self.num_classes, self.pair = ds, ds.adapter, ds.num_classes, False

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mega_chunk_bytes_tiny")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--val-size", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import multiseq.tasks as tasks
    from multiseq.train import evaluate, fit, model_for_data

    train = tasks.get("listops", split="train", size=a.train_size, seed=a.seed)
    val = tasks.get("listops", split="val", size=a.val_size, seed=a.seed)
    majority = float(np.bincount(val.labels, minlength=10).max() / len(val))
    train, val = _View(train), _View(val)
    torch.manual_seed(a.seed)
    model = model_for_data(a.model, train)
    before = {k: v for k, v in evaluate(model, val, batch_size=32).items() if k != "confusion"}
    t = time.time()
    res = fit(model, train, val, steps=a.steps, batch_size=a.batch_size, lr=a.lr, weight_decay=0.05,
              warmup_steps=a.steps // 10, seed=a.seed, progress=False, log_every=max(1, a.steps // 10))
    print(json.dumps({"model": a.model, "steps": a.steps, "batch_size": a.batch_size, "train_size": a.train_size,
                      "val_size": a.val_size, "majority_class_acc": majority, "before": before,
                      "after": {k: v for k, v in res.metrics.items() if k != "confusion"}, "train_seconds": round(time.time() - t, 1)}))


if __name__ == "__main__":
    main()

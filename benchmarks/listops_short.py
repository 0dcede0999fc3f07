"""Short CPU runs showing which presets learn ListOps (LRA's generator, seeded), all on the same budget.

    .venv/bin/python benchmarks/listops_short.py --steps 1000 --train-size 10000 --val-size 1000 --threads 1 \
        --models s4d_bytes_tiny,mega_chunk_bytes_tiny,ls_bytes_tiny

Trains each model (default: `contextpool_local_bytes_tiny`, `spade_bytes_tiny`, and `local_bytes_tiny` for
reference; each adapted to the ListOps vocabulary by `model_for_data`) on `multiseq.tasks.toy.listops_short` (LRA's ListOps
generator with trees of 50..400 tokens, so a CPU run takes minutes) and reports validation accuracy before and
after training against the majority-class rate of the same validation set. One JSON line per model on stdout
(progress lines too: keep the lines that start with `{`). Records: `results/listops-short-*.jsonl`.

`--task lra` trains on LRA's own ListOps lengths instead (`multiseq.tasks` "listops", 500..2,000 tokens), e.g.
Mega-chunk, where information crosses the 128-token chunks only through the EMA:

    .venv/bin/python benchmarks/listops_short.py --task lra --models mega_chunk_bytes_tiny --steps 300 \
        --batch-size 16 --train-size 4000 --val-size 400
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


class _View(torch.utils.data.Dataset):
    """A task dataset without its numpy `labels` array (which `fit` would read as class names)."""

    def __init__(self, ds) -> None:
        self.ds, self.adapter, self.num_classes, self.pair = ds, ds.adapter, ds.num_classes, False

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


def load(task: str, size: int, split: str, seed: int):
    """ListOps examples of the short generator (`short`, 50..400 tokens) or of LRA's lengths (`lra`)."""
    if task == "short":
        from multiseq.tasks.toy import listops_short

        return listops_short(split, size, seed=seed)
    import multiseq.tasks as tasks

    return _View(tasks.get("listops", split=split, size=size, seed=seed))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="contextpool_local_bytes_tiny,spade_bytes_tiny,local_bytes_tiny")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default="short", choices=("short", "lra"), help="ListOps lengths: 50..400 or LRA's")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from multiseq.train import evaluate, fit, model_for_data

    train = load(a.task, a.train_size, "train", a.seed)
    val = load(a.task, a.val_size, "val", a.seed)
    labels = np.array([val[i][1] for i in range(len(val))])
    majority = float(np.bincount(labels, minlength=10).max() / len(val))
    for name in a.models.split(","):
        torch.manual_seed(a.seed)
        model = model_for_data(name, train)
        before = evaluate(model, val, batch_size=64)["accuracy"]
        t = time.time()
        res = fit(model, train, val, steps=a.steps, batch_size=a.batch_size, lr=a.lr, weight_decay=0.05,
                  warmup_steps=a.steps // 10, seed=a.seed, progress=False, log_every=max(1, a.steps // 4))
        print(json.dumps({"model": name, "task": a.task, "steps": a.steps, "batch_size": a.batch_size,
                          "train_size": a.train_size, "val_size": a.val_size, "majority_class_acc": round(majority, 3),
                          "val_acc_before": round(before, 3),
                          "val_acc_after": round(res.metrics["eval"]["accuracy"], 3),
                          "metrics": {k: v for k, v in res.metrics.items() if k != "confusion"},
                          "train_seconds": round(time.time() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()

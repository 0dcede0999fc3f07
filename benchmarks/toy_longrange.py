"""Sub-minute CPU learning check for long-range blocks: a marker in the first 64 bytes decides the class.

Each example is `length` random letters with a marker `W`/`X`/`Y`/`Z` (the class; `--copies` of it) at random
positions < 64. Reports validation accuracy before and after training (chance 0.25).

    .venv/bin/python benchmarks/toy_longrange.py --steps 60                       # Transformer-LS, last position
    .venv/bin/python benchmarks/toy_longrange.py --model mega_chunk_bytes_tiny --length 256 --steps 80 \
        --copies 8 --pool mean --threads 1                                        # Mega-chunk: 0.25 -> 1.00 in ~25 s
    .venv/bin/python benchmarks/toy_longrange.py --model mega_chunk_bytes_tiny --length 256 --steps 80 \
        --copies 8 --pool last --threads 1                                        # cross-chunk: stays at chance

Transformer-LS with `--pool last` (the default) and `window` 64: the marker is outside the last segment's window, so
it reaches the classifier only through the dynamic projection (the long branch) of some layer. Mega-chunk with
`--pool last`: attention stays inside chunks of 128, so the marker can reach the classifier only through the
damped EMA (it needs far more steps: the initial decay 1 - alpha*delta ~ 0.75 forgets in a few dozen tokens).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch


def examples(n: int, length: int, seed: int, copies: int = 1) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        chars = [rng.choice("abcdefghijklmnopqrstuv") for _ in range(length)]
        label = rng.randrange(4)
        for pos in rng.sample(range(64), copies):
            chars[pos] = "WXYZ"[label]
        texts.append("".join(chars))
        labels.append(label)
    return texts, labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ls_bytes_tiny")
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool", default="last", choices=("mean", "last"))
    p.add_argument("--copies", type=int, default=1, help="marker copies in the first 64 positions")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from multiseq.config import AdapterConfig
    from multiseq.tasks import InMemoryDataset
    from multiseq.train import evaluate, fit, model_for_data

    adapter = AdapterConfig("bytes", max_length=a.length)
    train = InMemoryDataset(*examples(a.steps * a.batch_size, a.length, a.seed, a.copies), num_classes=4,
                            adapter=adapter)
    val = InMemoryDataset(*examples(256, a.length, a.seed + 1, a.copies), num_classes=4, adapter=adapter)
    torch.manual_seed(a.seed)
    model = model_for_data(a.model, train, head={"pool": a.pool})
    window = getattr(model.backbone.layers[0].block, "window", None)
    before = evaluate(model, val, batch_size=64)["accuracy"]
    t = time.time()
    res = fit(model, train, val, steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed, progress=False,
              log_every=max(1, a.steps // 4))
    print(json.dumps({"model": a.model, "window": window, "pool": a.pool, "copies": a.copies, "length": a.length,
                      "steps": a.steps, "batch_size": a.batch_size, "chance": 0.25, "val_acc_before": before,
                      "val_acc_after": res.metrics["eval"]["accuracy"], "train_seconds": round(time.time() - t, 1)}))


if __name__ == "__main__":
    main()

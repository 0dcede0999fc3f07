"""ContextPool side by side: `contextpool+local` against `attention` (SDPA) and plain `local`, width 256, batch 1,
forward+backward, in ONE process with interleaved repetitions (the machine is shared: only ratios measured this
way mean anything); min over repetitions.

    flock /tmp/multiseq-heavy.lock .venv/bin/python benchmarks/contextpool_side_by_side.py

Configuration: heads 8; local window 128 (the preset's); ContextPool radius 8, sigma_max 4 (the preset's).
Prints one JSON line per length, then the scaling exponents (least-squares slope of log time on log length) and
the speed-up over attention at the longest length.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from multiseq.blocks import build_block

WIDTH, HEADS = 256, 8
CONTENDERS = {
    "attention": ("attention", {"heads": HEADS}),
    "local": ("local", {"heads": HEADS, "window": 128}),
    "contextpool+local": ("contextpool+local", {"radius": 8, "sigma_max": 4.0, "inner": {"heads": HEADS, "window": 128}}),
}


def slope(points: list[tuple[int, float]]) -> float:
    xs = [math.log(L) for L, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lengths", default="1024,2048,4096,8192,16384")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    blocks = {k: build_block(name, WIDTH, **opts) for k, (name, opts) in CONTENDERS.items()}
    series: dict[str, list[tuple[int, float]]] = {k: [] for k in blocks}
    for L in [int(v) for v in args.lengths.split(",")]:
        x = torch.randn(1, L, WIDTH, requires_grad=True)
        mask = torch.ones(1, L, dtype=torch.bool)
        best = {k: math.inf for k in blocks}
        for k, blk in blocks.items():  # warm-up
            blk(x, mask).square().mean().backward()
        reps = args.reps if L < 16384 else max(3, args.reps - 2)
        for _ in range(reps):
            for k, blk in blocks.items():
                t = time.perf_counter()
                blk(x, mask).square().mean().backward()
                best[k] = min(best[k], time.perf_counter() - t)
        for k in blocks:
            series[k].append((L, best[k]))
        row = {k: round(v * 1e3, 1) for k, v in best.items()}
        row["speedup_vs_attention"] = round(best["attention"] / best["contextpool+local"], 2)
        print(json.dumps({"length": L, "fwdbwd_ms_min": row}), flush=True)
    print(json.dumps({"exponent": {k: round(slope(v), 3) for k, v in series.items()},
                      "speedup_vs_attention_at_longest": round(series["attention"][-1][1] / series["contextpool+local"][-1][1], 2)}))


if __name__ == "__main__":
    main()

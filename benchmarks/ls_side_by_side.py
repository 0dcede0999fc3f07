"""Transformer-LS side by side: the `ls` block against `attention` (SDPA), `attention_explicit` (memory) and
`long-short-transformer` from PyPI at equal configuration (heads 8, window 128, rank 32, width 256, batch 1),
forward+backward.

    flock /tmp/multiseq-heavy.lock .venv/bin/python benchmarks/ls_side_by_side.py

Times: for each length, ONE process builds every contender and interleaves their repetitions (the machine is
shared, so only ratios measured this way mean anything); min over repetitions. Memory: a fresh subprocess per
(contender, length) runs one forward+backward and reports the growth of peak RSS over its state before the call.
`attention_explicit` is measured where it fits (<= --explicit-max) and extrapolated with its fitted exponent above.
The PyPI peer needs `pip install long-short-transformer rotary-embedding-torch==0.1.5` (not a dependency).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

WIDTH, HEADS, WINDOW, RANK = 256, 8, 128, 32


def build(kind: str):
    import torch

    if kind == "pypi":
        from long_short_transformer import LongShortAttention

        m = LongShortAttention(dim=WIDTH, heads=HEADS, dim_head=WIDTH // HEADS, causal=False, window_size=WINDOW, r=RANK)
        return lambda x, mask: m(x)  # all tokens real
    from multiseq.blocks import build_block

    opts = {"window": WINDOW, "rank": RANK} if kind == "ls" else {}
    m = build_block(kind, WIDTH, heads=HEADS, **opts)
    return lambda x, mask: m(x, mask)


def step(fn, x, mask) -> None:
    fn(x, mask).square().mean().backward()


def times(L: int, kinds: list[str], reps: int) -> dict[str, float]:
    import torch

    torch.manual_seed(0)
    fns = {k: build(k) for k in kinds}
    x = torch.randn(1, L, WIDTH, requires_grad=True)
    mask = torch.ones(1, L, dtype=torch.bool)
    best = {k: math.inf for k in kinds}
    for i in range(reps + 1):  # the first round is warm-up
        for k, fn in fns.items():
            t = time.perf_counter()
            step(fn, x, mask)
            if i:
                best[k] = min(best[k], time.perf_counter() - t)
    return {k: 1e3 * v for k, v in best.items()}


def memory(kind: str, L: int) -> float:
    import torch

    fn = build(kind)
    x = torch.randn(1, L, WIDTH, requires_grad=True)
    mask = torch.ones(1, L, dtype=torch.bool)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(fn, x, mask)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024  # MB


def sub(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if r.returncode:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--explicit-max", type=int, default=4096)
    p.add_argument("--json")
    p.add_argument("--_times", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_mem", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    if a._times:
        print(json.dumps(times(a._times, ["ls", "pypi", "attention"], a.reps)))
        return
    if a._mem:
        print(json.dumps({"mb": memory(a._mem[0], int(a._mem[1]))}))
        return
    common = ["--threads", str(a.threads), "--reps", str(a.reps)]
    record: dict = {"config": {"width": WIDTH, "heads": HEADS, "window": WINDOW, "rank": RANK, "threads": a.threads}}
    for L in a.lengths:
        t = sub(["--_times", str(L), *common])
        mem = {k: sub(["--_mem", k, str(L), *common]).get("mb") for k in ("ls", "attention")}
        if L <= a.explicit_max:
            mem["attention_explicit"] = sub(["--_mem", "attention_explicit", str(L), *common]).get("mb")
        record[L] = {"ms": t, "mb": mem}
        print(L, json.dumps(record[L]), flush=True)
    ex = [(L, record[L]["mb"].get("attention_explicit")) for L in a.lengths if record[L]["mb"].get("attention_explicit")]
    fit = None
    if len(ex) >= 2:
        (l0, m0), (l1, m1) = ex[0], ex[-1]
        fit = math.log(m1 / m0) / math.log(l1 / l0)
        print(f"attention_explicit memory exponent {fit:.2f} (from {l0} to {l1})")
    print("\nL       ls ms   attn/ls  pypi/ls   ls MB  ls/explicit mem")
    for L in a.lengths:
        t, mem = record[L]["ms"], record[L]["mb"]
        if "error" in t:
            print(L, t)
            continue
        exp_mb, note = mem.get("attention_explicit"), ""
        if exp_mb is None and fit and ex:
            exp_mb, note = ex[-1][1] * (L / ex[-1][0]) ** fit, " (explicit extrapolated)"
        ratio = f"{mem['ls'] / exp_mb:.3f}{note}" if exp_mb and mem.get("ls") else "-"
        print(f"{L:<6d} {t['ls']:8.1f} {t['attention'] / t['ls']:8.2f} {t['pypi'] / t['ls']:8.2f} "
              f"{mem['ls'] or 0:7.1f}  {ratio}")
    Ls = [L for L in a.lengths if "ls" in record[L]["ms"]]
    if len(Ls) >= 2:
        e = math.log(record[Ls[-1]]["ms"]["ls"] / record[Ls[0]]["ms"]["ls"]) / math.log(Ls[-1] / Ls[0])
        print(f"ls time scaling exponent {Ls[0]}->{Ls[-1]}: {e:.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(record, f, indent=1, default=str)


if __name__ == "__main__":
    main()

"""Mega side by side in one run: `mega_chunk` and `mega` vs the `attention` (SDPA) and `attention_explicit` blocks,
and vs `MegaLayer` from `mega-pytorch` (PyPI, if installed) at equal configuration; forward+backward, batch 1.

    flock /tmp/multiseq-heavy.lock .venv/bin/python benchmarks/mega_side_by_side.py \
        --lengths 1024 2048 4096 8192 16384 --width 256

Equal configuration with `MegaLayer(dim=W, ema_heads=16, attn_dim_qk=64, attn_dim_value=W, causal=False)`: our
blocks use ndim=16, zdim=64, hdim=W, softmax, bidirectional EMA, and no feed-forward (`ffn_mult=0`; MegaLayer has
none). Timing: for each length, all blocks in ONE process with fixed threads, interleaved (one warm-up round, then
`--reps` rounds; min and median), so the load of a shared machine hits all alike. Memory: one forward+backward per
(block, length) in a fresh process, the growth of `ru_maxrss` after set-up. Ratios matter, not
absolute times (the machine is shared). Runs whose estimated memory exceeds `--max-gb` are skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

PEER = "mega-pytorch"


def _build(kind: str, width: int, chunk: int):
    from multiseq.blocks import build_block

    mega_opts = dict(ndim=16, zdim=64, hdim=width, attention_fn="softmax", ffn_mult=0.0)
    if kind == PEER:
        from mega_pytorch import MegaLayer

        m = MegaLayer(dim=width, ema_heads=16, attn_dim_qk=64, attn_dim_value=width, causal=False)
        return lambda x, mask: m(x)
    if kind == "mega_chunk":
        m = build_block("mega_chunk", width, chunk=chunk, **mega_opts)
    elif kind == "mega":
        m = build_block("mega", width, max_positions=1024, **mega_opts)
    else:
        m = build_block(kind, width)  # attention / attention_explicit: 8 heads
    return lambda x, mask: m(x, mask)


def _memory(kind: str, L: int, width: int, chunk: int, threads: int) -> dict:
    """Peak memory of one forward+backward, in a fresh process (`ru_maxrss` growth after set-up)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fn = _build(kind, width, chunk)
    x = torch.randn(1, L, width, requires_grad=True)
    mask = torch.ones(1, L, dtype=torch.bool)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn(x, mask).square().mean().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"kind": kind, "L": L, "peak_mb": (peak - base) / 1024}


def _times(kinds: list[str], L: int, width: int, chunk: int, reps: int, threads: int) -> dict:
    """Interleaved timing in ONE process: every rep runs each kind once, so machine load hits all alike."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fns = {k: _build(k, width, chunk) for k in kinds}
    x = torch.randn(1, L, width, requires_grad=True)
    mask = torch.ones(1, L, dtype=torch.bool)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(reps + 1):
        for k in kinds:
            t = time.perf_counter()
            fns[k](x, mask).square().mean().backward()
            if i:  # the first round is warm-up
                times[k].append(time.perf_counter() - t)
    out = {}
    for k, ts in times.items():
        ts.sort()
        out[k] = {"min_ms": 1e3 * ts[0], "median_ms": 1e3 * ts[len(ts) // 2]}
    return out


def _estimate_gb(kind: str, L: int, width: int) -> float:
    # Rough upper bounds to skip runs that cannot fit (the quadratic baselines at long lengths).
    if kind == "attention_explicit":
        return 8 * L * L * 4 * 4 / 1e9  # 8 heads, scores + probs + grads
    if kind in ("mega", PEER):
        return L * L * 4 * 8 / 1e9  # scores, probabilities, their gradients and the bias (measured ~5x L^2 floats)
    return 0.0


def _slope(rows: list[dict]) -> float:
    xs = [math.log(r["L"]) for r in rows]
    ys = [math.log(r["min_ms"]) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--chunk", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-gb", type=float, default=6.0)
    p.add_argument("--kinds", nargs="+", default=["mega_chunk", "mega", "attention", "attention_explicit", PEER])
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--time", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        kind, L = a.one.split(":")
        print(json.dumps(_memory(kind, int(L), a.width, a.chunk, a.threads)))
        return
    if a.time:
        kinds, L = a.time.split(":")
        print(json.dumps(_times(kinds.split(","), int(L), a.width, a.chunk, a.reps, a.threads)))
        return
    kinds = []
    for kind in a.kinds:
        if kind == PEER:
            try:
                import mega_pytorch  # noqa: F401
            except ImportError:
                print(f"{PEER} is not installed: pip install {PEER}", file=sys.stderr)
                continue
        kinds.append(kind)
    common = ["--width", str(a.width), "--chunk", str(a.chunk), "--reps", str(a.reps), "--threads", str(a.threads)]
    rows = []
    for L in a.lengths:
        fit = [k for k in kinds if _estimate_gb(k, L, a.width) <= a.max_gb]
        for k in sorted(set(kinds) - set(fit)):
            print(f"skip {k} at L={L}: estimated memory above --max-gb {a.max_gb}", file=sys.stderr)
        out = subprocess.run([sys.executable, __file__, "--time", f"{','.join(fit)}:{L}", *common],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"timing at L={L} failed: {out.stderr.strip().splitlines()[-3:]}", file=sys.stderr)
            continue
        times = json.loads(out.stdout.strip().splitlines()[-1])
        for kind in fit:
            mem = subprocess.run([sys.executable, __file__, "--one", f"{kind}:{L}", *common],
                                 capture_output=True, text=True)
            peak = json.loads(mem.stdout.strip().splitlines()[-1])["peak_mb"] if mem.returncode == 0 else float("nan")
            row = {"kind": kind, "L": L, **times[kind], "peak_mb": peak}
            rows.append(row)
            print(f"{kind:>18} L={L:>6}  min {row['min_ms']:>10.1f} ms  median {row['median_ms']:>10.1f} ms  "
                  f"peak {row['peak_mb']:>8.1f} MB", flush=True)
    by = {(r["kind"], r["L"]): r for r in rows}
    print("\nratios (time: other / block; memory: block / other)")
    for L in a.lengths:
        for kind in ("mega_chunk", "mega"):
            r = by.get((kind, L))
            if not r:
                continue
            parts = [f"{kind} L={L}:"]
            for other in ("attention", "attention_explicit", PEER):
                o = by.get((other, L))
                if o:
                    parts.append(f"{o['min_ms'] / r['min_ms']:.2f}x faster than {other}")
                    parts.append(f"memory {r['peak_mb'] / max(o['peak_mb'], 1e-3):.3f}x of {other}")
            print("  " + "; ".join(parts))
    for kind in ("mega_chunk", "mega", "attention", PEER):
        rs = [r for r in rows if r["kind"] == kind]
        if len(rs) >= 2:
            print(f"scaling exponent {kind} ({rs[0]['L']}..{rs[-1]['L']}): {_slope(rs):.3f}")


if __name__ == "__main__":
    main()

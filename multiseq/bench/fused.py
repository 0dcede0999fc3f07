"""Fused paths against their references, per block: parity (forward and backward) and time, on one device.

    python -m multiseq.bench.fused --device cuda --lengths 1000,4096 --json gpu-fused.json

For every registered block (wrappers around `local`), two copies with identical weights are built: one under
`MULTISEQ_KERNELS=auto` (fused paths wherever they can run) and one under `MULTISEQ_KERNELS=off` (the plain
PyTorch references). A third, the reference in float64, is the truth. Following flash-attention's rule, the fused
output and gradients (input and every parameter) must be within 2x the float32 reference's error against float64,
plus a small absolute slack. The fused paths a block actually asked for (and whether each was granted) are
recorded by watching the dispatcher. Both copies are then timed, forward and forward+backward.

On a machine without CUDA nothing is fused: the check still runs end to end (the `fused` copy takes the reference
path, `fused_paths_used` is empty), which is how the test suite exercises it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import torch

from multiseq import kernels
from multiseq.bench.worker import is_oom


@contextmanager
def kernel_policy(value: str):
    """Set `MULTISEQ_KERNELS` for the duration (blocks read it at construction and in forward)."""
    old = os.environ.get(kernels.KERNELS_ENV)
    os.environ[kernels.KERNELS_ENV] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(kernels.KERNELS_ENV, None)
        else:
            os.environ[kernels.KERNELS_ENV] = old


@contextmanager
def watch_dispatch(log: dict[str, bool]):
    """Record every fused path the dispatcher is asked about and whether it was granted."""
    original = kernels.why_not

    def spy(name: str, device: Any = None) -> str | None:
        reason = original(name, device)
        log[name] = log.get(name, False) or reason is None
        return reason

    kernels.why_not = spy  # use_fused looks why_not up in its module at call time
    try:
        yield
    finally:
        kernels.why_not = original


def _run(block: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, cot: torch.Tensor, policy: str):
    with kernel_policy(policy):
        block.zero_grad(set_to_none=True)
        xx = x.detach().clone().requires_grad_(True)
        y = block(xx, mask)
        y.backward(cot)
    grads = {n: p.grad.detach().clone() for n, p in block.named_parameters() if p.grad is not None}
    return y.detach(), xx.grad.detach(), grads


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _time(fn: Any, sync: Any, reps: int) -> float:
    fn()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def check_block(name: str, L: int, *, width: int, batch: int, device: str, reps: int, atol: float) -> dict[str, Any]:
    """Parity and timing of one block at length L; the result always has a `status`."""
    from multiseq.blocks import build_block

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    used: dict[str, bool] = {}
    out: dict[str, Any] = {"block": name, "length": L, "width": width, "batch": batch}
    from multiseq.bench.core import LENGTH_OPTIONS, _accepted

    opts = {k: L for k in LENGTH_OPTIONS.get(name, ("max_length",)) if k in _accepted(name)}
    try:
        with kernel_policy("auto"), watch_dispatch(used):
            fused = build_block(name, width, device=dev, **opts)
        with kernel_policy("off"):
            ref = build_block(name, width, device=dev, **opts)
            ref64 = build_block(name, width, device=dev, dtype=torch.float64, **opts)
        ref.load_state_dict(fused.state_dict())
        ref64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in fused.state_dict().items()})
        for m in (fused, ref, ref64):
            m.train(False)
        x = torch.randn(batch, L, width, device=dev)
        mask = torch.ones(batch, L, dtype=torch.bool, device=dev)
        if batch > 1:
            mask[-1, L - L // 3 :] = False  # a padded row: padding handling is part of the contract
        cot = torch.randn(batch, L, width, device=dev)
        with watch_dispatch(used):
            yf, gxf, gpf = _run(fused, x, mask, cot, "auto")
        y32, gx32, gp32 = _run(ref, x, mask, cot, "off")
        y64, gx64, gp64 = _run(ref64, x.double(), mask, cot.double(), "off")
    except (RuntimeError, MemoryError) as e:
        if is_oom(e):
            return {**out, "status": "oom", "error": str(e).splitlines()[0][:200] if str(e) else "oom"}
        return {**out, "status": "error", "error": f"{type(e).__name__}: {e}"[:300]}
    checks = {"output": (yf, y32, y64), "input_grad": (gxf, gx32, gx64)}
    for n in gp64:
        if n in gpf and n in gp32:
            checks[f"grad.{n}"] = (gpf[n], gp32[n], gp64[n])
    worst: dict[str, Any] = {}
    ok = True
    for label, (f, r32, r64) in checks.items():
        e_f, e_r = _err(f, r64), _err(r32, r64)
        scale = float(r64.abs().max()) if r64.numel() else 0.0
        passed = e_f <= 2 * e_r + atol * max(1.0, scale)
        ok &= passed
        if not passed or label in ("output", "input_grad"):
            worst[label] = {"err_fused": e_f, "err_ref32": e_r, "pass": passed}
    out.update(status="ok", parity_ok=ok, parity=worst, fused_paths_used=sorted(k for k, v in used.items() if v),
               fused_paths_refused={k: kernels.why_not(k, dev) for k, v in used.items() if not v})

    def fwd(block: torch.nn.Module, policy: str):
        def f():
            with kernel_policy(policy), torch.no_grad():
                block(x, mask)
        return f

    def fwdbwd(block: torch.nn.Module, policy: str):
        def f():
            with kernel_policy(policy):
                block.zero_grad(set_to_none=True)
                block(x.requires_grad_(True), mask).backward(cot)
        return f

    try:
        for mode, make in (("fwd", fwd), ("fwdbwd", fwdbwd)):
            t_f = _time(make(fused, "auto"), sync, reps)
            t_r = _time(make(ref, "off"), sync, reps)
            out[f"{mode}_fused_ms"], out[f"{mode}_ref_ms"], out[f"{mode}_speedup"] = t_f, t_r, t_r / t_f
    except (RuntimeError, MemoryError) as e:
        if not is_oom(e):
            raise
        out["timing"] = "oom"
    return out


def run(blocks: list[str], lengths: list[int], *, width: int, batch: int, device: str, reps: int,
        atol: float, budget_s: float, log: Any = print) -> dict[str, Any]:
    """Every block at every length, stopping (and saying so) when the time budget is spent."""
    t0 = time.perf_counter()
    if device.startswith("cuda"):
        # Parity in true fp32: TF32 matmuls would blur the comparison.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    results: list[dict[str, Any]] = []
    for name in blocks:
        for L in lengths:
            if time.perf_counter() - t0 > budget_s:
                results.append({"block": name, "length": L, "status": "skipped", "error": "time budget spent"})
                continue
            r = check_block(name, L, width=width, batch=batch, device=device, reps=reps, atol=atol)
            results.append(r)
            log(_line(r))
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "fused_paths": [{"op": o, "description": d, "available": a, "reason": r} for o, d, a, r in kernels.explain()],
        "all_parity_ok": all(r.get("parity_ok", True) for r in results if r.get("status") == "ok"),
        "results": results,
    }


def _line(r: dict[str, Any]) -> str:
    head = f"{r['block']:<20} L={r['length']:<6}"
    if r.get("status") != "ok":
        return f"{head} {r.get('status', '?').upper()}: {r.get('error', '')}"
    sp = " ".join(f"{m} {r.get(m + '_fused_ms', float('nan')):.2f}/{r.get(m + '_ref_ms', float('nan')):.2f} ms"
                  for m in ("fwd", "fwdbwd"))
    return (f"{head} parity {'ok' if r['parity_ok'] else 'FAIL'}  fused {','.join(r['fused_paths_used']) or '-'}"
            f"  fused/ref {sp}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--blocks", default="all")
    p.add_argument("--lengths", default="1000,4096")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--atol", type=float, default=1e-5, help="absolute slack, relative to the output's scale")
    p.add_argument("--budget", type=float, default=150.0, help="seconds; later configurations are skipped")
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    from multiseq.blocks import get_block_class, list_blocks

    if a.blocks == "all":
        blocks = [f"{n}+local" if getattr(get_block_class(n), "wrapper", False) else n for n in list_blocks()]
    else:
        blocks = [b.strip() for b in a.blocks.split(",") if b.strip()]
    lengths = [int(t) for t in a.lengths.split(",") if t.strip()]
    rec = run(blocks, lengths, width=a.width, batch=a.batch, device=a.device, reps=a.reps, atol=a.atol,
              budget_s=a.budget)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rec, f, indent=1)
    print(f"parity: {'all ok' if rec['all_parity_ok'] else 'FAILURES (see parity in the JSON)'}")
    return 0 if rec["all_parity_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

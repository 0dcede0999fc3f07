"""Turning a wall-clock budget into a step count, so a budget run stays deterministic.

The run rehearses its first steps (`WARM` untimed, then `TIMED` timed, on the stream's first batches), puts model,
optimiser and every RNG back exactly as they were, and fixes `total = floor((budget - rehearsal) / step time)`. From
there it is an ordinary step-based run of `total` steps (its learning-rate schedule spans `total`), identical to
`steps=total`; resuming keeps the recorded total. Only the safety stop (`over_budget`) depends on the clock.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from multiseq.train.data import Collate, _MicroBatches
from multiseq.train.records import RunContext
from multiseq.train.steps import Snapshot, Stepper

WARM, TIMED = 3, 10


def rehearse(ctx: RunContext, stepper: Stepper, data: Any, collate: Collate, cap: int | None) -> dict[str, float]:
    """Time `WARM + TIMED` steps and undo them. Returns `{"total_steps", "step_s", "rehearsal_s"}`."""
    budget_s = ctx.cfg.budget_minutes * 60.0
    t0 = time.perf_counter()
    steps = WARM + TIMED
    if cap is not None and cap <= steps:
        return {"total_steps": cap, "step_s": 0.0, "rehearsal_s": 0.0}
    snap = Snapshot(stepper.objective.module, stepper.optimizer, ctx.device)
    sampler = _MicroBatches(ctx.n, ctx.cfg, 0, steps, ctx.rank, ctx.world)
    batches = (collate([data[i] for i in idx]) for idx in sampler)
    timed = 0.0
    try:
        for s in range(steps):
            t = time.perf_counter()
            stepper.step(batches, s, 1.0 / (s + 1))  # a gentle ramp; these steps are undone
            if s >= WARM:
                timed += time.perf_counter() - t
    finally:
        snap.restore()
    step_s = _max(timed / TIMED, ctx)
    rehearsal_s = _max(time.perf_counter() - t0, ctx)
    total = max(1, math.floor((budget_s - rehearsal_s) / max(step_s, 1e-9)))
    if cap is not None:
        total = min(total, cap)
    return {"total_steps": int(total), "step_s": step_s, "rehearsal_s": rehearsal_s}


def over_budget(train_s: float, budget_s: float | None) -> bool:
    """True once the training time (evaluation excluded) has passed the budget."""
    return budget_s is not None and train_s > budget_s


def _max(value: float, ctx: RunContext) -> float:
    # Every process must fix the same total: the slowest one's timing decides.
    if ctx.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t.item())

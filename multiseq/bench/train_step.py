"""One training-throughput setting, run inside a benchmark worker process (`kind: "train"` jobs).

A job measures a preset's full optimiser step: forward, cross-entropy, backward, gradient clipping and AdamW, on
inputs of the adapter's real output shape (`token` adapters: random ids `(B, L)`; `linear` adapters such as
rendered text: random features `(B, L, C)`), all positions real. With `world > 1` the job is one rank of a
data-parallel group (torch.distributed, gloo on CPU): each rank takes `batch / world` samples and the gradients are
all-reduced by `DistributedDataParallel`; rank 0 reports.

Job keys: model, override (dict), batch, length, threads, warmup, repeats, min_time_s, precision (`fp32` |
`bf16`: autocast), rank, world, master_port.

Reported: step times (median, min) and steps/s, samples/s of the whole group; `flops_per_step`: what
`FlopCounterMode` counts in one forward + backward of the whole batch by the bare model (matmuls, convolutions,
attention; not FFTs nor element-wise work, as usual for model FLOP utilisation); `matmul_gflops`: a square fp32
matmul of the model's largest matmul size (`matmul_size`, the cube root of its M x K x N), timed after every step,
in turns with the steps, in the same process at the same thread count (with `world > 1`, on every rank at once,
summed), median (`matmul_gflops_best`: fastest); `mfu` = achieved FLOP/s / matmul FLOP/s (median step against
median matmul; `mfu_best`: fastest against fastest).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any


def _inputs(model: Any, batch: int, length: int) -> tuple[Any, Any, Any]:
    import torch

    spec = model.adapter.embed_spec()
    if spec.kind == "token":
        x = torch.randint(1, spec.vocab_size, (batch, length))
    elif spec.kind == "linear":
        x = torch.randn(batch, length, spec.in_features)
    else:
        raise ValueError(f"training throughput needs a token or linear adapter, not {spec.kind!r}")
    mask = torch.ones(batch, length, dtype=torch.bool)
    y = torch.randint(0, model.config.num_classes, (batch,))
    return x, mask, y


def _largest_matmul(model: Any, step: Any) -> int:
    """Run `step` once with hooks on every Linear; the cube root of the largest M x K x N, rounded to 32."""
    from torch import nn

    sizes: list[float] = []

    def hook(m: nn.Linear, args: tuple, out: Any) -> None:
        rows = args[0].numel() // args[0].shape[-1]
        sizes.append(float(rows) * m.in_features * m.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        step()
    finally:
        for h in handles:
            h.remove()
    n = round(max(sizes, default=512.0**3) ** (1 / 3) / 32) * 32
    return int(min(2048, max(128, n)))


def run_train_job(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from multiseq.models import create_model

    world, rank = int(job.get("world", 1)), int(job.get("rank", 0))
    dist = None
    if world > 1:
        import torch.distributed as dist

        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = str(job["master_port"])
        dist.init_process_group("gloo", rank=rank, world_size=world)
    batch = int(job["batch"])
    if batch % world:
        raise ValueError(f"batch {batch} does not split over {world} processes")
    torch.manual_seed(rank)
    model = create_model(job["model"], **(job.get("override") or {}))
    model.train()
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    x, mask, y = _inputs(model, batch // world, int(job["length"]))
    bf16 = job.get("precision", "fp32") == "bf16"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x, mask)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    n = _largest_matmul(model, step)
    # Model FLOPs: one forward + backward of the whole batch by the bare model, so that every setting counts the
    # same work (ranks each also generate the batch-independent SSM kernel; that is overhead, not model work).
    xf, maskf, yf = _inputs(model, batch, int(job["length"]))
    with FlopCounterMode(display=False) as counter, torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        F.cross_entropy(model(xf, maskf).float(), yf).backward()
    flops = int(counter.get_total_flops())
    opt.zero_grad(set_to_none=True)
    del xf, maskf, yf
    step()
    for _ in range(max(0, int(job.get("warmup", 2)) - 2)):
        step()
    # The matmul probe is timed after every step, in turns with it, so that both see the same machine load (on a
    # shared machine a probe taken once, before or after, can be off by 3x).
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)
    times: list[float] = []
    mm_times: list[float] = []
    t_start = time.perf_counter()
    while len(times) < int(job.get("repeats", 5)) or (
        time.perf_counter() - t_start < float(job.get("min_time_s", 0.0)) and len(times) < 1000
    ):
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        torch.mm(a, b, out=c)
        mm_times.append(time.perf_counter() - t1)
        times.append(t1 - t0)
    mm, mm_best = 2 * n**3 / statistics.median(mm_times) / 1e9, 2 * n**3 / min(mm_times) / 1e9
    if dist is not None:
        t = torch.tensor([mm, mm_best], dtype=torch.float64)
        dist.all_reduce(t)  # the group's matmul rate: every rank's, measured at once
        mm, mm_best = t.tolist()
        dist.destroy_process_group()
    med, best = statistics.median(times), min(times)
    return {
        "status": "ok",
        "rank": rank,
        "params": sum(p.numel() for p in model.parameters()),
        "step_ms_median": med * 1e3,
        "step_ms_min": best * 1e3,
        "repeats": len(times),
        "times_ms": [round(t * 1e3, 3) for t in times],
        "steps_per_s": 1 / med,
        "samples_per_s": batch / med,
        "samples_per_s_best": batch / best,
        "flops_per_step": flops,
        "achieved_gflops": flops / med / 1e9,
        "matmul_size": n,
        "matmul_gflops": mm,
        "mfu": flops / med / 1e9 / mm,
        "matmul_gflops_best": mm_best,
        "mfu_best": flops / best / 1e9 / mm_best,
        "torch_threads": torch.get_num_threads(),
    }

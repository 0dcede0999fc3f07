"""`multiseq bench --train`: training throughput of a preset, and its model FLOP utilisation.

    multiseq bench --train --model s4d_bytes_tiny --batch 32 --length 2048 --threads 1,2 --procs 1,2

Each setting runs in fresh processes (`multiseq.bench.worker`, job kind `train`, see `multiseq.bench.train_step`):
one process with each thread count of `threads`, and for each `procs` above 1 a data-parallel group of that many
processes with one thread each (torch.distributed, gloo), each taking its share of the batch. Per setting: step
time (median and min over at least 5 steps after warm-up), steps/s and samples/s, the FLOPs of one step counted by
`FlopCounterMode` (backward included), the fp32 rate of a square matmul of the model's largest matmul size measured
in the same processes right after, and model FLOP utilisation (MFU) = achieved FLOP/s / matmul FLOP/s. `scaling`
is a setting's samples/s over the one-process, one-thread setting's (of the first precision listed), measured in the
same run. With `--precision fp32,bf16` every setting runs in both (bf16: CPU autocast; the FLOPs and the matmul
probe stay those of fp32, so MFU reads as utilisation of the fp32 matmul rate).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from multiseq.bench.core import _loadavg, run_workers
from multiseq.errors import ConfigError

SCHEMA = 1
ENV_KEYS = ("OMP_WAIT_POLICY", "MULTISEQ_FFT_THREADS", "MULTISEQ_KERNELS")


@dataclass(frozen=True)
class TrainSpec:
    """One training-throughput run.

    Attributes:
        model: preset name; `override`: `create_model` overrides (partial `adapter` / `head` / `stem` dicts).
        batch, length: the global batch and the adapter's sequence length (tokens, or patches for render presets).
        threads: thread counts of the one-process settings; procs: process counts (above 1: one thread each).
        precision: `fp32` and/or `bf16` (autocast on CPU); every setting runs in each.
        repeats, warmup, min_time_s: timed steps (at least 5), untimed steps first (at least 2: one sizes the
            matmul probe, one counts FLOPs), and the least time spent timing.
        timeout: seconds per setting.
    """

    model: str
    batch: int
    length: int
    override: dict[str, Any] = field(default_factory=dict)
    threads: tuple[int, ...] = (1,)
    procs: tuple[int, ...] = (1,)
    precision: tuple[str, ...] = ("fp32",)
    repeats: int = 5
    warmup: int = 3
    min_time_s: float = 0.0
    timeout: float = 900.0

    def __post_init__(self) -> None:
        if self.repeats < 5:
            raise ConfigError(f"--repeats must be at least 5 (got {self.repeats}): medians of fewer runs are noise")
        object.__setattr__(self, "precision", tuple(self.precision))
        bad = [p for p in self.precision if p not in ("fp32", "bf16")]
        if bad or not self.precision:
            raise ConfigError(f"--precision takes fp32 and/or bf16, got {self.precision!r}")
        for p in self.procs:
            if p < 1 or self.batch % p:
                raise ConfigError(f"--procs {p}: the batch of {self.batch} must split evenly over the processes")
        if min(self.threads, default=1) < 1 or self.batch < 1 or self.length < 1:
            raise ConfigError("--threads, --batch and --length must be at least 1")

    def settings(self) -> list[tuple[int, int, str]]:
        """(processes, threads per process, precision): per precision, one-process settings first."""
        out = []
        for prec in dict.fromkeys(self.precision):
            out += [(1, t, prec) for t in dict.fromkeys(self.threads)] if 1 in self.procs else []
            out += [(p, 1, prec) for p in dict.fromkeys(self.procs) if p > 1]
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def benchmark_train(spec: TrainSpec, *, log: Any = print) -> dict[str, Any]:
    """Measure every setting of `spec`; returns the record (`config`, `machine`, `results`)."""
    from multiseq.bench.worker import _cpu_name
    from multiseq.models import get_model_config

    get_model_config(spec.model, **spec.override)  # a bad name or override fails here, with suggestions
    t_begin = time.perf_counter()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = _loadavg()
    base = dict(kind="train", model=spec.model, override=spec.override, batch=spec.batch, length=spec.length,
                repeats=spec.repeats, warmup=max(2, spec.warmup),
                min_time_s=spec.min_time_s, device="cpu")
    results = []
    for procs, threads, prec in spec.settings():
        port = _free_port()
        jobs = [{**base, "threads": threads, "precision": prec, "rank": r, "world": procs, "master_port": port}
                for r in range(procs)]
        outs = run_workers(jobs, spec.timeout)
        bad = [o for o in outs if o.get("status") != "ok"]
        entry = {"procs": procs, "threads": threads, "precision": prec,
                 "setting": f"{procs}p x {threads}t" + ("" if prec == "fp32" else f" {prec}"),
                 **(bad[0] if bad else outs[0])}
        results.append(entry)
        log(_progress(entry))
    ref = next((e for e in results if e["procs"] == 1 and e["threads"] == 1 and e["status"] == "ok"
                and e["precision"] == spec.precision[0]), None)
    for e in results:
        if ref is not None and e["status"] == "ok":
            e["scaling"] = e["samples_per_s"] / ref["samples_per_s"]
            e["scaling_best"] = e["samples_per_s_best"] / ref["samples_per_s_best"]
    return {
        "schema": SCHEMA,
        "kind": "train",
        "date": started,
        "command": "multiseq " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None,
        "machine": {"cpu": _cpu_name(), "loadavg_before": load_before, "loadavg_after": _loadavg(),
                    "wall_s": time.perf_counter() - t_begin},
        # Settings of the environment that change the figures (OMP_WAIT_POLICY: see benchmarks/README.md).
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "config": {"model": spec.model, "override": spec.override, "batch": spec.batch, "length": spec.length,
                   "precision": list(spec.precision), "repeats": spec.repeats, "warmup": spec.warmup,
                   "min_time_s": spec.min_time_s, "settings": [list(s) for s in spec.settings()]},
        "results": json.loads(json.dumps(results)),
    }


def _progress(e: dict[str, Any]) -> str:
    if e["status"] != "ok":
        return f"{e['setting']:<14} {e['status'].upper()}: {e.get('error', '')}"
    return (f"{e['setting']:<14} step {e['step_ms_median']:8.1f} ms (min {e['step_ms_min']:8.1f})  "
            f"{e['samples_per_s']:7.1f} samples/s  MFU {e['mfu']:.3f}")


def train_tables(record: dict[str, Any]) -> str:
    """Markdown: one row per setting."""
    c, m = record["config"], record["machine"]
    out = [f"Training throughput of `{c['model']}` (override {json.dumps(c['override'])}), batch {c['batch']}, "
           f"length {c['length']}; {m.get('cpu', '?')}; load average before/after "
           f"{m.get('loadavg_before')} / {m.get('loadavg_after')}; {record.get('date', '?')}; environment "
           f"{json.dumps({k: v for k, v in (record.get('env') or {}).items() if v is not None}) or '{}'}.", "",
           "| setting | step ms (median / min) | steps/s | samples/s | GFLOP/step | achieved GFLOP/s "
           "| matmul GFLOP/s (n) | MFU (median / best) | samples/s vs first 1p x 1t (median / best) |",
           "|---" * 9 + "|"]
    for e in record["results"]:
        if e["status"] != "ok":
            out.append(f"| {e['setting']} | {e['status'].upper()}: {e.get('error', '')[:80]} |" + " |" * 7)
            continue
        sc = f"{e['scaling']:.2f}x / {e['scaling_best']:.2f}x" if "scaling" in e else "-"
        out.append(f"| {e['setting']} | {e['step_ms_median']:.1f} / {e['step_ms_min']:.1f} | {e['steps_per_s']:.2f} "
                   f"| {e['samples_per_s']:.1f} | {e['flops_per_step'] / 1e9:.2f} | {e['achieved_gflops']:.1f} "
                   f"| {e['matmul_gflops']:.1f} ({e['matmul_size']}) | {e['mfu']:.3f} / {e['mfu_best']:.3f} | {sc} |")
    return "\n".join(out) + "\n"

"""One benchmark configuration, run in its own process: `python -m multiseq.bench.worker '<json job>'`.

The parent (`multiseq.bench.core`) starts one process per (block, length, mode) so that allocator caches, thread pools
and FFT plans of one configuration never leak into the next. The worker prints one line
`MULTISEQ_BENCH_RESULT {json}` on stdout and exits 0, also when the configuration ran out of memory (status `oom`).

A job is a dict:
    kind: "block" | "peer" | "machine"
    name: block name (`local`, `contextpool+local`) or peer name (`mega-pytorch`)
    length, width, batch: sizes; mode: "fwd" (under no_grad) or "fwdbwd" (forward + backward of a fixed
        random cotangent, to the parameters and the input)
    scope: "block" (the registered block alone) or "layer" (the backbone's pre-norm residual `Layer` around it)
    options: block constructor options; dtype, device, threads, repeats, warmup, min_time_s, mem_cap_mb

Timing: `warmup` untimed calls (the first one under torch's FlopCounterMode, which counts matmul, convolution
and attention FLOPs of what actually ran), then at least `repeats` timed calls, more while the total is under
`min_time_s`. Peak memory is taken over the timed calls: on CPU the growth of the resident set (VmHWM after
resetting it, minus VmRSS before, after returning freed heap pages to the system), on CUDA
`max_memory_allocated` minus the allocation before. Inputs and parameters are allocated before, so the figure is
activations plus workspace. On CPU the address space is capped at `mem_cap_mb` above the current size, so a
configuration that needs more fails with an allocation error, recorded as `oom`, instead of taking the machine.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from typing import Any

MARKER = "MULTISEQ_BENCH_RESULT "


def _emit(result: dict[str, Any]) -> None:
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


def _status_kb(field: str) -> int | None:
    # Fields of /proc/self/status such as VmRSS, VmHWM, VmSize (kB); None off Linux.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    # Give freed heap pages back to the system so that the next call's RSS growth is its real footprint.
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cap_address_space(extra_mb: float) -> None:
    vm = _status_kb("VmSize")
    if vm is None or extra_mb <= 0:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = int(vm * 1024 + extra_mb * 2**20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    global _address_space_capped
    _address_space_capped = True


# Under the address-space cap, C code whose allocation fails may return an error without setting an exception,
# which Python reports as a SystemError: that is an allocation failure too.
_address_space_capped = False


def is_oom(exc: BaseException) -> bool:
    """True for the errors an allocation failure raises (CPU allocator, CUDA caching allocator, MemoryError)."""
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, SystemError) and _address_space_capped:
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory", "bad_alloc"))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}: " + (lines[0] if lines else "allocation failed"))[:300]


def machine_probe(device: str, threads: int, dtype: str = "float32") -> dict[str, Any]:
    """Measured floor rates: dense matmul GFLOP/s and copy GB/s (read + write bytes) on `device`."""
    import torch

    dev = torch.device(device)
    dt = getattr(torch, dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def best(fn: Any, reps: int) -> float:
        fn()
        sync()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return min(times)

    # Large enough to run at the BLAS peak and to stream from memory, small enough to probe in about a second.
    n = 1536 if dev.type == "cpu" else 8192
    a = torch.randn(n, n, device=dev, dtype=dt)
    b = torch.randn(n, n, device=dev, dtype=dt)
    t_mm = best(lambda: a @ b, 5)
    numel = (32 if dev.type == "cpu" else 512) * 2**20
    src = torch.randn(numel, device=dev, dtype=dt)
    dst = torch.empty_like(src)
    t_cp = best(lambda: dst.copy_(src), 7)
    info: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": dtype,
        "matmul_gflops": 2 * n**3 / t_mm / 1e9,
        "copy_gbs": 2 * numel * src.element_size() / t_cp / 1e9,
        "matmul_size": n,
        "copy_mb": numel * src.element_size() / 2**20,
    }
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_module(job: dict[str, Any]) -> Any:
    """The module a job measures, on its device and dtype, and a call `f(x, mask) -> y`."""
    import torch

    device, dtype = torch.device(job["device"]), getattr(torch, job["dtype"])
    if job["kind"] == "peer":
        from multiseq.bench.peers import build_peer

        return build_peer(job["name"], job["width"], dict(job.get("options") or {}), device=device, dtype=dtype)
    if job.get("scope", "block") == "layer":
        from multiseq.backbone import Layer
        from multiseq.config import BlockSpec

        m = Layer(BlockSpec(job["name"], dict(job.get("options") or {})), job["width"], ffn_mult=4.0, norm="layer",
                  dropout=0.0, causal=False, device=device, dtype=dtype)
    else:
        from multiseq.blocks import build_block

        m = build_block(job["name"], job["width"], device=device, dtype=dtype, **(job.get("options") or {}))
    return m, (lambda x, mask: m(x, mask))


def _prepare(job: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Build one block or peer job: its result so far (params, costs) and `step()`, one timed call."""
    import torch

    from multiseq.bench.costs import block_costs

    torch.manual_seed(0)
    device = torch.device(job["device"])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    B, L, D, mode = job["batch"], job["length"], job["width"], job["mode"]
    result: dict[str, Any] = {"status": "ok"}
    module, call = build_module(job)
    module.train(mode == "fwdbwd")
    result["params"] = sum(p.numel() for p in module.parameters())
    result.update(block_costs(job["name"] if job["kind"] == "block" else "peer:" + job["name"], module, L, D, B))

    x = torch.randn(B, L, D, device=device, dtype=getattr(torch, job["dtype"]), requires_grad=(mode == "fwdbwd"))
    mask = torch.ones(B, L, dtype=torch.bool, device=device)
    cot = torch.randn(B, L, D, device=device, dtype=x.dtype)

    def step() -> None:
        if mode == "fwd":
            with torch.no_grad():
                call(x, mask)
        else:
            module.zero_grad(set_to_none=True)
            x.grad = None
            y = call(x, mask)
            y.backward(cot)
        sync()

    return result, step


def _start(job: dict[str, Any]) -> bool:
    """Threads, allocator pools and the address-space cap, before anything is measured; True on CUDA."""
    import torch

    # Threads and allocator pools exist before the cap, so the cap bounds the configuration itself.
    (torch.randn(64, 64) @ torch.randn(64, 64)).sum().item()
    cuda = torch.device(job["device"]).type == "cuda"
    if not cuda:
        _cap_address_space(float(job.get("mem_cap_mb") or 0))
    return cuda


def _counted_flops(step: Any) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def _times(times: list[float]) -> dict[str, Any]:
    return {"median_ms": statistics.median(times), "min_ms": min(times), "repeats": len(times),
            "times_ms": [round(t, 4) for t in times]}


def _more(job: dict[str, Any], done: int, t_start: float) -> bool:
    # At least `repeats` timed calls, more while under `min_time_s` (at most 1000).
    return done < int(job.get("repeats", 5)) or (
        time.perf_counter() - t_start < float(job.get("min_time_s", 0.0)) and done < 1000)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Measure one configuration; never raises for an out-of-memory configuration (status `oom`)."""
    import torch

    torch.set_num_threads(int(job.get("threads") or 1))
    if job["kind"] == "machine":
        return {"status": "ok", "machine": machine_probe(job["device"], int(job.get("threads") or 1),
                                                         job.get("dtype", "float32"))}
    if job["kind"] == "train":
        from multiseq.bench.train_step import run_train_job

        return run_train_job(job)
    if job["kind"] == "interleaved":
        return _run_interleaved(job)
    result, step = _prepare(job)
    cuda = _start(job)
    try:
        result["flops_counted"] = _counted_flops(step)
        for _ in range(max(0, int(job.get("warmup", 1)) - 1)):
            step()
        times: list[float] = []
        peak = _PeakMemory(cuda)
        peak.start()
        t_start = time.perf_counter()
        while _more(job, len(times), t_start):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
        result.update(peak.stop())
    except (RuntimeError, MemoryError, SystemError) as e:
        if not is_oom(e):
            raise
        return {**result, "status": "oom", "error": _first_line(e)}
    result.update(_times(times))
    return result


def _prepare_or_fail(job: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    # A member that cannot be built (a peer not installed, bad options) is recorded; the group goes on.
    try:
        return _prepare(job)
    except ModuleNotFoundError as e:
        return {"status": "missing", "error": str(e)}, None
    except Exception as e:
        if is_oom(e):
            return {"status": "oom", "error": _first_line(e)}, None
        return {"status": "error", "error": f"{type(e).__name__}: {e}"[:500]}, None


def _run_interleaved(group: dict[str, Any]) -> dict[str, Any]:
    """Every member job of `group["members"]` in this process, their calls in turns: warm-up rounds, then timed
    rounds until every member has its repetitions. Peak memory per member: the largest growth of one call, with
    freed heap returned and the high-water mark reset before each call. A member that cannot be built, runs out
    of memory or fails is recorded (`missing`, `oom`, `error`) and leaves the rotation; the others go on."""
    prepared = [_prepare_or_fail(job) for job in group["members"]]
    cuda = _start(group)
    times: list[list[float]] = [[] for _ in prepared]
    peaks: list[float] = [0.0 for _ in prepared]
    method = ""
    live = [i for i, (result, _) in enumerate(prepared) if result["status"] == "ok"]

    def call(i: int, first: bool = False) -> float | None:
        result, step = prepared[i]
        try:
            if first:
                result["flops_counted"] = _counted_flops(step)
                return None
            peak = _PeakMemory(cuda)
            peak.start()
            t0 = time.perf_counter()
            step()
            dt = (time.perf_counter() - t0) * 1e3
            mem = peak.stop()
            nonlocal method
            peaks[i], method = max(peaks[i], mem["peak_mem_mb"]), mem["mem_method"]
            return dt
        except Exception as e:
            if is_oom(e):
                result.update(status="oom", error=_first_line(e))
            else:
                result.update(status="error", error=f"{type(e).__name__}: {e}"[:500])
            live.remove(i)
            return None

    for r in range(max(1, int(group.get("warmup", 1)))):
        for i in list(live):
            call(i, first=(r == 0))
    t_start = time.perf_counter()
    while live and _more(group, min(len(times[i]) for i in live), t_start):
        for i in list(live):
            dt = call(i)
            if dt is not None:
                times[i].append(dt)
    out = []
    for i, (result, _) in enumerate(prepared):
        if result["status"] == "ok":
            result.update(_times(times[i]), peak_mem_mb=peaks[i], mem_method=method)
        out.append(result)
    return {"status": "ok", "members": out}


class _PeakMemory:
    """Peak memory growth over the calls between `start()` and `stop()` (the timed ones).

    CPU: freed heap pages go back to the system first, then VmHWM is reset, so the growth of the resident set is
    what the calls themselves touch at their peak. CUDA: `max_memory_allocated` above the allocation at start.
    """

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def start(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return
        _trim_heap()
        self.exact = _reset_peak_rss()
        self.before = _status_kb("VmRSS") or 0

    def stop(self) -> dict[str, Any]:
        import torch

        if self.cuda:
            peak = torch.cuda.max_memory_allocated() - self.before
            return {"peak_mem_mb": peak / 2**20, "mem_method": "cuda_max_allocated"}
        if self.exact:
            peak_kb = _status_kb("VmHWM") or self.before
            return {"peak_mem_mb": max(0, peak_kb - self.before) / 1024, "mem_method": "rss_hwm_growth"}
        # Without a resettable high-water mark: lifetime peak minus the RSS at start (an upper bound).
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"peak_mem_mb": max(0, peak_kb - self.before) / 1024, "mem_method": "ru_maxrss_growth"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m multiseq.bench.worker '<json job>'", file=sys.stderr)
        return 2
    job = json.loads(argv[0])
    try:
        result = run_job(job)
    except ModuleNotFoundError as e:  # a peer that is not installed
        result = {"status": "missing", "error": str(e)}
    except Exception as e:  # any failure is a recorded outcome, with its message
        if is_oom(e):
            result = {"status": "oom", "error": _first_line(e)}
        else:
            traceback.print_exc()
            result = {"status": "error", "error": f"{type(e).__name__}: {e}"[:500]}
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

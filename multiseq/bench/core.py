"""`multiseq bench`: every block measured the same way, side by side with attention, PyPI peers and the floor.

    multiseq bench --blocks local,s4d --lengths 1024,4096,16384 --width 256 --mode fwd,fwdbwd --json out.json

Each (block, length, mode, threads) runs in a fresh process (`multiseq.bench.worker`) with fixed threads, warm-up,
at least 5 timed repetitions (min and median) and their peak memory. The two baselines of the house,
`attention` (SDPA) and `attention_explicit` (the materialised L x L softmax), are always in the same run. A
configuration that runs out of memory, out of time or fails is recorded with its status, never dropped; once a
block is out of memory or time at one length, longer lengths are recorded the same way without running them.

Blocks are built with `multiseq.blocks.build_block(name, width, **options)` and measured alone (`--scope block`,
the default), or inside the backbone's pre-norm residual `Layer` (`--scope layer`, adds norm and feed-forward).

Derived figures (`derive`), written to the JSON and printed:
* `speedup_vs_attention`: attention's median time / the block's, same length, mode and threads;
* `mem_vs_attention_explicit` (the "memory" of the block issues) and `mem_vs_attention`: peak memory ratios;
  where `attention_explicit` ran out of memory, its memory is extrapolated with its fitted exponent and the
  ratio is marked `mem_ref_extrapolated`;
* `exponent_time`, `exponent_mem`: least-squares slopes of log time and log memory against log length;
* `floor_ms` and `floor_ratio`: the roofline floor max(FLOPs / matmul rate, bytes / copy rate), rates measured on
  this machine in the same run (`machine`), counts from `multiseq.bench.costs`;
* `speedup_vs_peer`: the PyPI peer's median time / the block's, same configuration.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from multiseq.bench.worker import MARKER
from multiseq.errors import ConfigError

BASELINES = ("attention", "attention_explicit")
# Blocks whose cost grows faster than linearly by design (L^2; Sparse Transformer L^1.5); the linear-time
# targets do not apply to them.
QUADRATIC = {"attention", "attention_explicit", "mega", "synthesizer", "sparse"}
# Targets set by the block issues: speed-up over SDPA attention at the longest length.
SPEEDUP_TARGETS = {"s4d": 15.0, "mega_chunk": 8.0, "ls": 8.0, "contextpool+local": 5.0}
DEFAULT_SPEEDUP_TARGET = 5.0
TARGETS = {"exponent_time": 1.15, "mem_vs_attention_explicit": 0.25, "speedup_vs_peer": 1.5, "floor_ratio": 3.0}
SCHEMA = 1
# Options set to the longest length unless given: `max_length` wherever accepted; DSS normalises its kernel over
# `l_max` steps and refuses longer inputs (S4 and S4D only use it as an initial kernel length, so it stays).
LENGTH_OPTIONS = {"dss": ("max_length", "l_max")}


def _job_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def run_worker(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one job in a fresh process; the result dict always has a `status`."""
    return run_workers([job], timeout)[0]


def run_workers(jobs: list[dict[str, Any]], timeout: float, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run jobs in fresh processes started together (e.g. the ranks of one data-parallel group); one result per
    job, each with a `status`. `env` is added to every process's environment."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "multiseq.bench.worker", json.dumps(job)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**_job_env(job.get("threads", 1)), **(env or {})})
             for job in jobs]
    outs: list[dict[str, Any]] = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(0.0, timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
                q.communicate()
            return [{"status": "timeout", "error": f"no result within {timeout:g} s", "wall_s": time.perf_counter() - t0}
                    for _ in jobs]
        outs.append(_parse_worker(p.returncode, stdout, stderr, time.perf_counter() - t0))
    return outs


def _parse_worker(returncode: int, stdout: str, stderr: str, wall: float) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
    if lines:
        return {**json.loads(lines[-1][len(MARKER):]), "wall_s": wall}
    if returncode in (-9, 137):
        # SIGKILL from the kernel's OOM killer: the configuration did not fit in memory.
        return {"status": "oom", "error": "killed by SIGKILL (out of memory)", "wall_s": wall}
    tail = (stderr or stdout).strip().splitlines()[-3:]
    return {"status": "error", "error": f"exit {returncode}: " + " | ".join(tail), "wall_s": wall}


def measure_machine(device: str, threads: int, dtype: str, timeout: float) -> dict[str, Any]:
    r = run_worker({"kind": "machine", "device": device, "threads": threads, "dtype": dtype}, timeout)
    if r.get("status") != "ok":
        raise RuntimeError(f"machine probe failed: {r.get('error')}")
    return r["machine"]


@dataclass(frozen=True)
class BenchSpec:
    """What one `multiseq bench` run measures (the CLI flags, one field each; validated on construction).

    Attributes:
        blocks: block names (`a+b` for wrappers); `attention` and `attention_explicit` are added unless
            `baselines` is False.
        lengths: sequence lengths (sorted, duplicates dropped).
        width, batch, dtype, device: the input `(batch, L, width)`.
        modes: `fwd` and/or `fwdbwd`.
        threads: torch thread counts, one pass over everything per count (default: min(2, CPUs)).
        repeats, warmup, min_time_s: at least 5 timed calls after `warmup` untimed ones, more while under
            `min_time_s`.
        timeout, mem_cap_mb: per configuration (per group with `interleave`); past them it is recorded, not run.
        peers, peer_lengths: PyPI peers and the lengths they run at (default: `lengths`).
        scope: `block` (alone) or `layer` (inside the backbone's pre-norm residual Layer).
        options: per-block (or `peer:name`) constructor options.
        budget_s: configurations not started by then are recorded as `skipped`.
        interleave: at each (threads, mode, length), every block and peer in ONE fresh process, their timed calls
            taken in turns (round-robin), so that the load of a shared machine falls on all of them alike; memory
            is still each call's own peak (heap trimmed and high-water mark reset before every call).
    """

    blocks: tuple[str, ...]
    lengths: tuple[int, ...]
    width: int = 256
    modes: tuple[str, ...] = ("fwd", "fwdbwd")
    batch: int = 1
    dtype: str = "float32"
    threads: tuple[int, ...] = ()
    repeats: int = 5
    warmup: int = 2
    min_time_s: float = 0.5
    device: str = "cpu"
    timeout: float = 600.0
    mem_cap_mb: float = 6000.0
    peers: tuple[str, ...] = ()
    peer_lengths: tuple[int, ...] = ()
    scope: str = "block"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: bool = True
    budget_s: float | None = None
    interleave: bool = False

    def __post_init__(self) -> None:
        if self.scope not in ("block", "layer"):
            raise ConfigError(f"--scope must be block or layer, got {self.scope!r}")
        bad = [m for m in self.modes if m not in ("fwd", "fwdbwd")]
        if bad:
            raise ConfigError(f"unknown mode(s) {bad}; valid: fwd, fwdbwd")
        if self.repeats < 5:
            raise ConfigError(f"--repeats must be at least 5 (got {self.repeats}): medians of fewer runs are noise")
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (normalise a frozen record once)
        put("blocks", tuple(self.blocks))
        put("modes", tuple(self.modes))
        put("lengths", tuple(sorted(set(self.lengths))))
        put("threads", tuple(self.threads) or (min(2, os.cpu_count() or 1),))
        put("peers", tuple(self.peers))
        put("peer_lengths", tuple(sorted(set(self.peer_lengths or self.lengths))))

    def names(self) -> list[str]:
        """The blocks measured, baselines first."""
        return list(dict.fromkeys([*(BASELINES if self.baselines else ()), *self.blocks]))

    def job_base(self) -> dict[str, Any]:
        return dict(width=self.width, batch=self.batch, dtype=self.dtype, device=self.device, repeats=self.repeats,
                    warmup=self.warmup, min_time_s=self.min_time_s, mem_cap_mb=self.mem_cap_mb, scope=self.scope)

    def config(self) -> dict[str, Any]:
        return dict(width=self.width, batch=self.batch, dtype=self.dtype, repeats=self.repeats, warmup=self.warmup,
                    device=self.device, timeout_s=self.timeout, mem_cap_mb=self.mem_cap_mb, scope=self.scope,
                    budget_s=self.budget_s, interleave=self.interleave)


def benchmark(spec: BenchSpec, *, checkpoint: str | None = None, log: Any = print) -> dict[str, Any]:
    """Measure every configuration of `spec` and return the record (`machine`, `config`, `results`, derived).

    Blocks that take a `max_length` option get the longest length unless `options` set it. With a `checkpoint`
    path, the partial record is written after every configuration.
    """
    t_begin = time.perf_counter()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = spec.names()
    _check_blocks(names)
    peers = _check_peers(list(spec.peers))
    load_before = _loadavg()
    threads = list(spec.threads)
    machine = {t: measure_machine(spec.device, t, spec.dtype, spec.timeout) for t in threads}
    results: list[dict[str, Any]] = []
    plan = _plan(names, peers, list(spec.lengths), list(spec.peer_lengths))

    def make_record(partial: bool) -> dict[str, Any]:
        return _record(started, machine, threads, load_before, t_begin, names, peers, list(spec.lengths),
                       spec.modes, spec.config(), results, partial)

    def add(entry: dict[str, Any]) -> None:
        results.append(entry)
        log(_progress(entry))
        if checkpoint:
            _write_json(checkpoint, make_record(partial=True))

    for t in threads:
        for mode in spec.modes:
            members = [_Member(kind, name, lens, spec) for kind, name, lens in plan]
            if spec.interleave:
                for L in spec.lengths:
                    _run_group([m for m in members if L in m.lengths], L, mode, t, spec, t_begin, add)
            else:
                for m in members:
                    for L in m.lengths:
                        _run_group([m], L, mode, t, spec, t_begin, add)
    return make_record(partial=False)


class _Member:
    """One block or peer of the plan: its options and its history across lengths (for stops and predictions)."""

    def __init__(self, kind: str, name: str, lengths: list[int], spec: BenchSpec) -> None:
        self.kind, self.name, self.lengths = kind, name, lengths
        self.label = name if kind == "block" else f"peer:{name}"
        self.quadratic = name in QUADRATIC or name == "mega-pytorch"
        self.opts = dict(spec.options.get(self.label, {}))
        for key in LENGTH_OPTIONS.get(name, ("max_length",)):
            if kind == "block" and key in _accepted(name) and key not in self.opts:
                self.opts[key] = max(lengths)
        self.stop: dict[str, Any] | None = None
        self.history: list[tuple[int, float]] = []

    def verdict(self, L: int, spec: BenchSpec, t_begin: float) -> dict[str, Any] | None:
        """Why this member is not run at length L (a result to record), or None to run it."""
        predicted = _predicted_s(self.history, L, spec.warmup + spec.repeats + 1, self.quadratic)
        if spec.budget_s is not None and time.perf_counter() - t_begin > spec.budget_s:
            return {"status": "skipped", "error": f"not run: time budget of {spec.budget_s:g} s spent"}
        if self.stop is not None:
            return {"status": self.stop["status"], "error": f"not run: {self.stop['status']} at length {self.stop['length']}"}
        if predicted is not None and predicted > spec.timeout:
            return {"status": "timeout", "error": f"not run: predicted {predicted:.0f} s > timeout {spec.timeout:g} s"}
        return None

    def update(self, L: int, entry: dict[str, Any]) -> None:
        if entry["status"] in ("oom", "timeout"):
            self.stop = self.stop or {"status": entry["status"], "length": L}
        elif entry["status"] == "ok":
            self.history.append((L, entry["median_ms"]))


def _run_group(members: list[_Member], L: int, mode: str, t: int, spec: BenchSpec, t_begin: float, add: Any) -> None:
    """Run the members at one (length, mode, threads): one process each, or all in one interleaved process."""
    entries, run = {}, []
    for m in members:
        entries[m.label] = {"block": m.label, "kind": m.kind, "length": L, "width": spec.width, "mode": mode,
                            "threads": t, "batch": spec.batch, "dtype": spec.dtype, "device": spec.device,
                            "scope": spec.scope, "options": m.opts}
        why = m.verdict(L, spec, t_begin)
        if why is not None:
            entries[m.label].update(why)
        else:
            run.append(m)
    jobs = [{**spec.job_base(), "kind": m.kind, "name": m.name, "length": L, "mode": mode, "threads": t,
             "options": m.opts} for m in run]
    if spec.interleave and jobs:
        group = {**spec.job_base(), "kind": "interleaved", "length": L, "mode": mode, "threads": t, "members": jobs}
        r = run_worker(group, spec.timeout)
        outs = r.pop("members", None) or [dict(r) for _ in run]  # a failed group: every member gets its status
        for m, out in zip(run, outs):
            entries[m.label].update({**out, "interleaved": True, "wall_s": r.get("wall_s")})
    else:
        for m, job in zip(run, jobs):
            entries[m.label].update(run_worker(job, spec.timeout))
    for m in members:
        m.update(L, entries[m.label])
        add(entries[m.label])


def _plan(names: list[str], peers: list[str], lengths: list[int], peer_lengths: list[int]) -> list[tuple]:
    """Blocks in the given order, each PyPI peer right after the first block it is compared with (so a time
    budget that runs out loses whole blocks with their peers, never the peers of the blocks it measured)."""
    from multiseq.bench.peers import PEERS

    plan: list[tuple] = []
    left = list(peers)
    for n in names:
        plan.append(("block", n, lengths))
        for p in [p for p in left if n in PEERS[p].compares]:
            plan.append(("peer", p, peer_lengths))
            left.remove(p)
    return plan + [("peer", p, peer_lengths) for p in left]


def _write_json(path: str, record: dict[str, Any]) -> None:
    # Written after every configuration (temp file + rename), so an interrupted run leaves a valid record.
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)


def _record(started: str, machine: dict, threads: list[int], load_before: Any, t_begin: float, names: list[str],
            peers: list[str], lengths: list[int], modes: tuple[str, ...], config: dict[str, Any],
            results: list[dict[str, Any]], partial: bool) -> dict[str, Any]:
    record = {
        "schema": SCHEMA,
        "partial": partial,
        "date": started,
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "multiseq " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None,
        "machine": machine[threads[0]] | {"by_threads": {str(t): machine[t] for t in threads},
                                          "loadavg_before": load_before, "loadavg_after": _loadavg(),
                                          "wall_s": time.perf_counter() - t_begin},
        "config": {"blocks": names, "peers": peers, "lengths": lengths, "modes": list(modes), "threads": threads,
                   **config},
        "results": results,
    }
    return derive(json.loads(json.dumps(record)))


def _loadavg() -> list[float] | None:
    # Other processes on the machine change every timing; the record keeps how busy it was.
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _predicted_s(history: list[tuple[int, float]], L: int, calls: int, quadratic: bool) -> float | None:
    """Seconds the configuration at length L would take, extrapolated from the lengths measured so far.

    Quadratic blocks grow as L^2; others as their own slope over the last two lengths, clipped to [1, 2] (one
    noisy short length must not condemn a linear block), or as L with a single length.
    """
    if not history:
        return None
    L0, ms = history[-1]
    if quadratic:
        k = 2.0
    elif len(history) >= 2 and history[-2][0] != L0 and history[-2][1] > 0 and ms > 0:
        k = min(2.0, max(1.0, math.log(ms / history[-2][1]) / math.log(L0 / history[-2][0])))
    else:
        k = 1.0
    return calls * ms / 1e3 * (L / L0) ** k


def _progress(e: dict[str, Any]) -> str:
    head = f"{e['block']:<24} L={e['length']:<6} {e['mode']:<6} t={e['threads']}"
    if e["status"] != "ok":
        return f"{head} {e['status'].upper()}: {e.get('error', '')}"
    return f"{head} median {e['median_ms']:9.2f} ms  min {e['min_ms']:9.2f} ms  mem {e['peak_mem_mb']:8.1f} MB"


def _accepted(name: str) -> set[str]:
    from multiseq.blocks import get_block_class
    from multiseq.blocks.registry import accepted_options

    return accepted_options(get_block_class(name.split("+", 1)[0])) or set()


def _check_blocks(names: list[str]) -> None:
    from multiseq.blocks import get_block_class

    for n in names:
        for part in n.split("+"):
            get_block_class(part)  # raises with near matches


def _check_peers(peers: list[str]) -> list[str]:
    from multiseq.bench.peers import list_peers

    if peers == ["all"]:
        return list_peers()
    known = set(list_peers())
    for p in peers:
        if p not in known:
            raise ConfigError(f"unknown peer {p!r}; known peers: {', '.join(sorted(known))} (or 'all')")
    return peers


# --------------------------------------------------------------------------------------------------- derived


def merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from several runs (e.g. short lengths unlocked, long lengths under the heavy-job lock).

    Results are concatenated (a later run replaces the same block, length, mode and threads); each keeps the
    matmul and copy rates of its own run as `rates` and its run's date as `run`, so floors stay per run. Ratios
    at a length come from the run that measured that length; exponents may span runs (the record says so).
    """
    merged: dict[tuple, dict[str, Any]] = {}
    for rec in records:
        by_threads = (rec.get("machine") or {}).get("by_threads") or {}
        for e in rec["results"]:
            e = dict(e)
            m = by_threads.get(str(e["threads"])) or rec.get("machine") or {}
            e.setdefault("rates", {k: m.get(k) for k in ("matmul_gflops", "copy_gbs")})
            e.setdefault("run", rec.get("date"))
            merged[(e["block"], e["length"], e["mode"], e["threads"])] = e
    out = {**records[-1], "results": list(merged.values()),
           "merged_from": [{"date": r.get("date"), "command": r.get("command"), "machine": r.get("machine")}
                           for r in records]}
    return out


def fit_exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x); None with fewer than two distinct positive points."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def _ok(e: dict[str, Any]) -> bool:
    return e.get("status") == "ok" and e.get("median_ms") is not None


def _extrapolate(series: list[tuple[int, float]], L: int) -> float | None:
    # Power law through the last two measured points (the fitted tail), to a longer length; from a single point,
    # the quadratic growth of the materialised L x L matrix.
    if len(series) == 1 and series[0][1] > 0:
        return series[0][1] * (L / series[0][0]) ** 2
    if len(series) < 2:
        return None
    (l0, y0), (l1, y1) = series[-2], series[-1]
    if y0 <= 0 or y1 <= 0 or l0 == l1:
        return None
    k = math.log(y1 / y0) / math.log(l1 / l0)
    return y1 * (L / l1) ** k


def derive(record: dict[str, Any], stat: str | None = None) -> dict[str, Any]:
    """Add the derived figures to every result and a per-(block, mode, threads) `summary`; returns the record.

    `stat` is the time statistic the ratios use: `median_ms` (default) or `min_ms` (closer to the block's own
    cost when other processes load the machine); the record keeps it as `derived_from`.
    """
    stat = stat or record.get("derived_from") or "median_ms"
    if stat not in ("median_ms", "min_ms"):
        raise ValueError(f"stat must be median_ms or min_ms, got {stat!r}")
    record["derived_from"] = stat
    from multiseq.bench.costs import BWD_FACTOR, floor_ms

    results = record["results"]
    by_threads = (record.get("machine") or {}).get("by_threads") or {}
    index = {(e["block"], e["length"], e["mode"], e["threads"]): e for e in results}
    peers_of: dict[str, list[str]] = {}
    try:
        from multiseq.bench.peers import PEERS

        for p in PEERS.values():
            for b in p.compares:
                peers_of.setdefault(b, []).append(f"peer:{p.name}")
    except ImportError:
        pass
    for e in results:
        if not _ok(e):
            continue
        key = (e["length"], e["mode"], e["threads"])
        att = index.get(("attention", *key))
        if att is not None and _ok(att):
            e["speedup_vs_attention"] = att[stat] / e[stat]
            if att.get("peak_mem_mb"):
                e["mem_vs_attention"] = e["peak_mem_mb"] / att["peak_mem_mb"]
        ref = index.get(("attention_explicit", *key))
        ref_mem, extrapolated = None, False
        if ref is not None and _ok(ref):
            ref_mem = ref.get("peak_mem_mb")
        elif ref is not None:
            series = sorted((r["length"], r["peak_mem_mb"]) for r in results
                            if r["block"] == "attention_explicit" and r["mode"] == e["mode"]
                            and r["threads"] == e["threads"] and _ok(r) and r.get("peak_mem_mb"))
            ref_mem, extrapolated = _extrapolate(series, e["length"]), True
        if ref_mem:
            e["mem_vs_attention_explicit"] = e["peak_mem_mb"] / ref_mem
            if extrapolated:
                e["mem_ref_extrapolated"] = True
        m = e.get("rates") or by_threads.get(str(e["threads"])) or record.get("machine") or {}
        flops = e.get("flops_fwd")
        nbytes = e.get("bytes_fwd")
        if flops is None and e.get("flops_counted"):
            # Counted FLOPs already include the backward pass in fwdbwd mode.
            flops = e["flops_counted"] / (BWD_FACTOR if e["mode"] == "fwdbwd" else 1.0)
        factor = BWD_FACTOR if e["mode"] == "fwdbwd" else 1.0
        if m.get("matmul_gflops") and m.get("copy_gbs") and (flops or nbytes):
            fl = floor_ms((flops or 0) * factor, (nbytes or 0) * factor, m["matmul_gflops"], m["copy_gbs"])
            if fl:
                e["floor_ms"] = fl
                e["floor_ratio"] = e[stat] / fl
        sp = {}
        for peer in peers_of.get(e["block"], []):
            pe = index.get((peer, *key))
            if pe is not None and _ok(pe):
                sp[peer] = pe[stat] / e[stat]
            elif pe is not None:
                sp[peer] = f"peer {pe['status']}"
        if sp:
            e["speedup_vs_peer"] = sp
    record["summary"] = _summaries(results, stat)
    return record


def _summaries(results: list[dict[str, Any]], stat: str) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for e in results:
        groups.setdefault((e["block"], e["mode"], e["threads"]), []).append(e)
    out = []
    for (block, mode, t), es in groups.items():
        ok = sorted((e for e in es if _ok(e)), key=lambda e: e["length"])
        s: dict[str, Any] = {"block": block, "mode": mode, "threads": t,
                             "lengths_ok": [e["length"] for e in ok],
                             "not_ok": {str(e["length"]): e["status"] for e in es if not _ok(e)},
                             "exponent_time": fit_exponent([(e["length"], e[stat]) for e in ok]),
                             "exponent_mem": fit_exponent([(e["length"], e["peak_mem_mb"]) for e in ok
                                                          if e.get("peak_mem_mb")])}
        if ok:
            top = ok[-1]
            s["at_length"] = top["length"]
            for k in ("median_ms", "peak_mem_mb", "speedup_vs_attention", "mem_vs_attention_explicit",
                      "mem_vs_attention", "mem_ref_extrapolated", "floor_ratio", "speedup_vs_peer"):
                if k in top:
                    s[k] = top[k]
        s["targets"] = _targets(block, s) if block not in QUADRATIC and not block.startswith("peer:") else {}
        out.append(s)
    return out


def _targets(block: str, s: dict[str, Any]) -> dict[str, Any]:
    """Each target with the value reached, whether it is met and, when missed, by what factor."""

    def check(value: Any, target: float, higher_is_better: bool) -> dict[str, Any]:
        if not isinstance(value, (int, float)):
            return {"target": target, "value": None, "met": None}
        met = value >= target if higher_is_better else value <= target
        miss = None if met else (target / value if higher_is_better else value / target)
        return {"target": target, "value": value, "met": met, "missed_by_factor": miss}

    t = {
        "exponent_time": check(s.get("exponent_time"), TARGETS["exponent_time"], False),
        "speedup_vs_attention": check(s.get("speedup_vs_attention"), SPEEDUP_TARGETS.get(block, DEFAULT_SPEEDUP_TARGET), True),
        "mem_vs_attention_explicit": check(s.get("mem_vs_attention_explicit"), TARGETS["mem_vs_attention_explicit"], False),
        "floor_ratio": check(s.get("floor_ratio"), TARGETS["floor_ratio"], False),
    }
    peers = {k: v for k, v in (s.get("speedup_vs_peer") or {}).items() if isinstance(v, (int, float))}
    if peers:
        t["speedup_vs_peer"] = check(min(peers.values()), TARGETS["speedup_vs_peer"], True)
    return t

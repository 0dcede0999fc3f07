"""`multiseq bench`: time and memory of blocks against attention, PyPI peers and the machine's floor.

The measuring lives in `multiseq.bench` (`benchmark`, `derive`, `merge_records`); this module reads the command line
and writes the record, tables and plot.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from multiseq.bench.core import benchmark, derive, merge_records
from multiseq.bench.report import plot, tables
from multiseq.errors import ConfigError


def _parse_list(text: str, kind: type = str) -> list[Any]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise ConfigError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--blocks", default="all", help="comma-separated block names (a+b for wrappers) or 'all' "
                   "(every registered block); attention and attention_explicit are always added")
    p.add_argument("--lengths", default="1024,2048,4096,8192,16384", help="comma-separated sequence lengths")
    p.add_argument("--width", type=int, default=256, help="model width D")
    p.add_argument("--mode", default="fwd,fwdbwd", help="fwd (no_grad), fwdbwd (forward + backward), or both")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"])
    p.add_argument("--threads", default=str(min(2, os.cpu_count() or 1)), help="comma-separated thread counts")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (at least 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first (the first counts FLOPs)")
    p.add_argument("--min-time", type=float, default=0.5, help="keep repeating fast configurations for this long (s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per configuration before it is recorded as timeout")
    p.add_argument("--mem-cap-mb", type=float, default=6000.0, help="memory a configuration may take before it is "
                   "recorded as oom (CPU: address-space cap above the process size)")
    p.add_argument("--peers", default="none", help="PyPI peers to measure: comma-separated names, 'all' or 'none' "
                   "(install with pip install -e '.[peers]')")
    p.add_argument("--peer-lengths", default="", help="lengths for the peers (default: --lengths)")
    p.add_argument("--scope", default="block", choices=["block", "layer"], help="the block alone, or inside the "
                   "pre-norm residual Layer with its feed-forward")
    p.add_argument("--options", default="{}", help='JSON of per-block options, e.g. \'{"local": {"window": 128}}\'')
    p.add_argument("--budget", type=float, default=None, help="seconds; configurations not started by then are "
                   "recorded as skipped")
    p.add_argument("--no-baselines", action="store_true", help="do not add attention and attention_explicit")
    p.add_argument("--json", default="", help="write the record here")
    p.add_argument("--plot", default="", help="write the log-log plot here (PNG)")
    p.add_argument("--markdown", default="", help="write the Markdown tables here")
    p.add_argument("--from-json", default="", help="only re-derive, print and plot existing records (several, "
                   "comma-separated, are merged; with --json the merged record is written)")
    p.add_argument("--stat", default=None, choices=["median_ms", "min_ms"], help="time statistic of the derived "
                   "ratios (default median_ms; min_ms is closer to a block's own cost on a loaded machine)")


def run_bench(args: argparse.Namespace) -> int:

    if args.from_json:
        records = []
        for path in _parse_list(args.from_json):
            with open(path) as f:
                records.append(json.load(f))
        record = derive(records[0] if len(records) == 1 else merge_records(records), args.stat)
    else:
        try:
            options = json.loads(args.options)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--options is not valid JSON: {e}") from None
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise ConfigError('--options must map block names to option objects, e.g. {"local": {"window": 128}}')
        if args.blocks == "all":
            from multiseq.blocks import get_block_class, list_blocks

            # A wrapper alone is not a block: measure it around local attention (`contextpool+local`).
            blocks = [f"{n}+local" if getattr(get_block_class(n), "wrapper", False) else n for n in list_blocks()]
        else:
            blocks = _parse_list(args.blocks)
        peers = [] if args.peers in ("", "none") else _parse_list(args.peers)
        record = benchmark(
            blocks, _parse_list(args.lengths, int), width=args.width, modes=tuple(_parse_list(args.mode)),
            batch=args.batch, dtype=args.dtype, threads=_parse_list(args.threads, int), repeats=args.repeats,
            warmup=args.warmup, min_time_s=args.min_time, device=args.device, timeout=args.timeout,
            mem_cap_mb=args.mem_cap_mb, peers=peers, peer_lengths=_parse_list(args.peer_lengths, int) or None,
            scope=args.scope, options=options, baselines=not args.no_baselines, budget_s=args.budget,
            checkpoint=args.json or None,
        )
        if args.stat:
            record = derive(record, args.stat)
    text = tables(record)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.plot:
        print(f"plot: {plot(record, args.plot)}")
    return 0


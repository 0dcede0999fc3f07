"""`multiseq bench`: time and memory of blocks against attention, PyPI peers and the machine's floor.

The measuring lives in `multiseq.bench` (`benchmark`, `derive`, `merge_records`); this module reads the command line
and writes the record, tables and plot.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from multiseq.bench.core import BenchSpec, benchmark, derive, merge_records
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
    p.add_argument("--interleave", action="store_true", help="at each length, every block and peer in one process, "
                   "their timed calls taken in turns (side by side on a shared machine); memory per call as usual")
    p.add_argument("--train", action="store_true", help="training throughput of a preset instead of blocks: "
                   "optimiser steps/s, samples/s and model FLOP utilisation per setting (see multiseq.bench.train)")
    p.add_argument("--model", default="", help="--train: the preset")
    p.add_argument("--override", default="{}", help="--train: JSON of create_model overrides, e.g. "
                   '\'{"width": 128, "adapter": {"max_length": 2048}}\'')
    p.add_argument("--length", type=int, default=1024, help="--train: sequence length (tokens or patches)")
    p.add_argument("--procs", default="1", help="--train: comma-separated process counts; above 1, a data-parallel "
                   "group (gloo) with one thread per process and the batch split between them")
    p.add_argument("--precision", default="fp32", help="--train: fp32 and/or bf16 (CPU autocast), comma-separated")
    p.add_argument("--json", default="", help="write the record here")
    p.add_argument("--plot", default="", help="write the log-log plot here (PNG)")
    p.add_argument("--markdown", default="", help="write the Markdown tables here")
    p.add_argument("--from-json", default="", help="only re-derive, print and plot existing records (several, "
                   "comma-separated, are merged; with --json the merged record is written)")
    p.add_argument("--stat", default=None, choices=["median_ms", "min_ms"], help="time statistic of the derived "
                   "ratios (default median_ms; min_ms is closer to a block's own cost on a loaded machine)")


def _json_arg(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{flag} is not valid JSON: {e}") from None


def _run_train(args: argparse.Namespace) -> dict[str, Any]:
    from multiseq.bench.train import TrainSpec, benchmark_train

    if not args.model:
        raise ConfigError("--train needs --model PRESET (see `multiseq info` for the presets)")
    override = _json_arg(args.override, "--override")
    if not isinstance(override, dict):
        raise ConfigError('--override must be a JSON object, e.g. {"width": 128}')
    spec = TrainSpec(model=args.model, batch=args.batch, length=args.length, override=override,
                     threads=tuple(_parse_list(args.threads, int)), procs=tuple(_parse_list(args.procs, int)),
                     precision=tuple(_parse_list(args.precision)), repeats=args.repeats, warmup=max(3, args.warmup),
                     min_time_s=args.min_time, timeout=args.timeout)
    return benchmark_train(spec)


def run_bench(args: argparse.Namespace) -> int:
    if args.train or (args.from_json and _first_kind(args.from_json) == "train"):
        from multiseq.bench.train import train_tables

        if args.train:
            record = _run_train(args)
        else:
            with open(_parse_list(args.from_json)[0]) as f:
                record = json.load(f)
        return _write(args, record, train_tables(record))

    if args.from_json:
        records = []
        for path in _parse_list(args.from_json):
            with open(path) as f:
                records.append(json.load(f))
        record = derive(records[0] if len(records) == 1 else merge_records(records), args.stat)
    else:
        options = _json_arg(args.options, "--options")
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise ConfigError('--options must map block names to option objects, e.g. {"local": {"window": 128}}')
        if args.blocks == "all":
            from multiseq.blocks import get_block_class, list_blocks

            # A wrapper alone is not a block: measure it around local attention (`contextpool+local`).
            blocks = [f"{n}+local" if getattr(get_block_class(n), "wrapper", False) else n for n in list_blocks()]
        else:
            blocks = _parse_list(args.blocks)
        peers = [] if args.peers in ("", "none") else _parse_list(args.peers)
        spec = BenchSpec(
            blocks=tuple(blocks), lengths=tuple(_parse_list(args.lengths, int)), width=args.width,
            modes=tuple(_parse_list(args.mode)), batch=args.batch, dtype=args.dtype,
            threads=tuple(_parse_list(args.threads, int)), repeats=args.repeats, warmup=args.warmup,
            min_time_s=args.min_time, device=args.device, timeout=args.timeout, mem_cap_mb=args.mem_cap_mb,
            peers=tuple(peers), peer_lengths=tuple(_parse_list(args.peer_lengths, int)), scope=args.scope,
            options=options, baselines=not args.no_baselines, budget_s=args.budget, interleave=args.interleave,
        )
        record = benchmark(spec, checkpoint=args.json or None)
        if args.stat:
            record = derive(record, args.stat)
    return _write(args, record, tables(record))


def _first_kind(paths: str) -> str | None:
    with open(_parse_list(paths)[0]) as f:
        return json.load(f).get("kind")


def _write(args: argparse.Namespace, record: dict[str, Any], text: str) -> int:
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.plot and record.get("kind") != "train":
        print(f"plot: {plot(record, args.plot)}")
    return 0


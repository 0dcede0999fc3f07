"""The `multiseq` command. Each subcommand lives in its own module with `add_arguments(parser)` and `run(args)`;
modules are imported only when their subcommand runs, so `multiseq info` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

from multiseq.errors import CheckpointError, ConfigError, InputError, UnknownNameError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("multiseq.cli.info", "versions, device, threads, and whether each fused path can run (and why not)"),
    "models": ("multiseq.cli.info", "list registered model presets (glob pattern)"),
    "train": ("multiseq.cli.train", "train a model on a task; run directory with metrics, checkpoints, plots; --resume"),
    "eval": ("multiseq.cli.evaluate", "evaluate a trained model (run directory or .safetensors) on a task split"),
    "predict": ("multiseq.cli.evaluate", "predict classes for given inputs or task examples with a trained model"),
    "demo": ("multiseq.cli.demo", "train a small long-range model on a built-in task, evaluate, predict"),
    "data": ("multiseq.cli.data", "generate, inspect (stats) and preview task data: ListOps, Pathfinder, IMDb, images"),
    "robustness": ("multiseq.cli.robustness", "accuracy of trained models under text attacks or image corruptions, per severity"),
    "bench": ("multiseq.cli.bench", "time and memory of blocks against attention, PyPI peers and the machine's floor"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multiseq", description="Long-sequence models across modalities.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(module) if name in _requested() else None
        if mod is not None:
            getattr(mod, f"add_{name}_arguments", getattr(mod, "add_arguments", lambda _p: None))(p)
        p.set_defaults(_module=module, _name=name)
    return parser


def _requested() -> set[str]:
    # Only the requested subcommand's module is imported (argument definitions included).
    return {a for a in sys.argv[1:] if a in COMMANDS}


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    mod = importlib.import_module(args._module)
    run = getattr(mod, f"run_{args._name}", getattr(mod, "run", None))
    try:
        return int(run(args) or 0)
    except (ConfigError, UnknownNameError, CheckpointError, InputError) as e:
        # Library code raises; only the command line turns an error into a message and an exit status.
        raise SystemExit(f"multiseq {args._name}: {e}") from None


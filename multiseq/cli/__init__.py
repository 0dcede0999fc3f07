"""The `multiseq` command. Each subcommand lives in its own module with `add_arguments(parser)` and `run(args)`;
modules are imported only when their subcommand runs, so `multiseq info` stays fast.

A user's mistake (unknown name, bad option, missing or corrupt file, existing run directory, read-only or full
disk, ...) prints one line, `multiseq: error: ...`, and exits with status 2. `--debug` (or `MULTISEQ_DEBUG=1`)
shows the traceback instead; anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from typing import NoReturn

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("multiseq.cli.info", "versions, device, threads, and whether each fused path can run (and why not)"),
    "models": ("multiseq.cli.info", "list registered model presets (glob pattern)"),
    "train": ("multiseq.cli.train", "train a model on a task; run directory with metrics, checkpoints, plots; --resume"),
    "pretrain": ("multiseq.cli.train", "self-pretrain a model's body on a task's training inputs (masked or causal); --resume"),
    "eval": ("multiseq.cli.evaluate", "evaluate a trained model (run directory or .safetensors) on a task split"),
    "predict": ("multiseq.cli.evaluate", "predict classes for given inputs or task examples with a trained model"),
    "demo": ("multiseq.cli.demo", "train a small long-range model on a built-in task, evaluate, predict"),
    "data": ("multiseq.cli.data", "generate, inspect (stats) and preview task data: ListOps, Pathfinder, IMDb, images"),
    "robustness": ("multiseq.cli.robustness", "accuracy of trained models under text attacks or image corruptions, per severity"),
    "bench": ("multiseq.cli.bench", "time and memory of blocks against attention, PyPI peers and the machine's floor"),
}

USAGE_ERROR = 2  # argparse's status for a bad command line; used for every user error


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (`multiseq: error: ...`) like every other user error."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(USAGE_ERROR, f"multiseq: error: {where}{message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from multiseq import __version__

    parser = _Parser(prog="multiseq", description="Long-sequence models across modalities.")
    parser.add_argument("--version", action="version", version=f"multiseq {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also MULTISEQ_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error (also MULTISEQ_DEBUG=1)")
        mod = importlib.import_module(module) if name in _requested() else None
        if mod is not None:
            getattr(mod, f"add_{name}_arguments", getattr(mod, "add_arguments", lambda _p: None))(p)
        p.set_defaults(_module=module, _name=name)
    return parser


def _requested() -> set[str]:
    # Only the requested subcommand's module is imported (argument definitions included).
    return {a for a in sys.argv[1:] if a in COMMANDS}


def _user_error_types() -> tuple[type[BaseException], ...]:
    # Imported here, after the failure, so that `multiseq info` does not import torch-heavy modules for them.
    from multiseq.errors import CheckpointError, ConfigError, InputError, UnknownNameError

    types: list[type[BaseException]] = [ConfigError, InputError, CheckpointError, UnknownNameError,
                                        FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
                                        FileExistsError]
    for module, name in (("multiseq.tasks._common", "DataError"), ("renderers.config", "RenderError")):
        try:
            types.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # an optional part that is not installed cannot have raised
            pass
    return tuple(types)


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for a user's mistake, or None when `exc` is a bug (keep its traceback)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    if isinstance(exc, _user_error_types()):
        if isinstance(exc, OSError) and exc.filename:
            return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
        text = str(exc)
        return text.strip() or type(exc).__name__
    return None


def _check_common(args: argparse.Namespace) -> None:
    """Options several commands share, checked before anything runs: `--threads`, `--device`."""
    from multiseq.errors import ConfigError

    threads = getattr(args, "threads", None)
    if isinstance(threads, int) and threads < 1:  # `bench --threads` is a list, checked there
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    device = getattr(args, "device", None)
    if isinstance(device, str) and device not in ("auto", ""):
        import torch

        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(f"--device {device}: no CUDA GPU is available here; use --device cpu (or auto)")
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def main(argv: list[str] | None = None) -> int:
    """Run the `multiseq` command line; returns the exit status (2 for a user error)."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("MULTISEQ_DEBUG", "") not in ("", "0")
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        _check_common(args)
        mod = importlib.import_module(args._module)
        run = getattr(mod, f"run_{args._name}", getattr(mod, "run", None))
        return int(run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("multiseq: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # Library code raises; only the command line turns a user's mistake into one line and an exit status.
        message = None if debug else user_error_message(e)
        if message is None:
            raise
        print(f"multiseq: error: {args._name}: {message}", file=sys.stderr)
        return USAGE_ERROR

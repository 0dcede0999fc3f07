"""Options shared by several commands: one spelling each (`--model`, `--task`, `--task-option`, `--data`,
`--threads`, `--device`), old spellings kept as aliases."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _task_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--task", required=required, help="task name (see multiseq.tasks) or module:function")
    p.add_argument("--task-option", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="option for the task (JSON value), repeatable, e.g. --task-option length=512")
    p.add_argument("--data", help="data folder of the task (passed as root=PATH: where it is read or generated)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")


def _task_options(args: argparse.Namespace) -> dict[str, Any]:
    opts = dict(args.task_option)
    if args.data:
        opts["root"] = args.data
    return opts


def _chance(res: dict[str, Any]) -> float:
    """Accuracy of always predicting the most frequent true class."""
    rows = [sum(r) for r in res["confusion"]]
    return max(rows) / max(1, sum(rows))

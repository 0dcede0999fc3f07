"""`multiseq robustness`: sweep a trained model (or several, side by side) over noise types and severities.

    multiseq robustness --model runs/imdb_bytes --compare runs/imdb_render --task text --noise all --out rob/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multiseq.cli._args import _kv
from multiseq.errors import ConfigError


def _floats(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_robustness_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "--checkpoint", dest="checkpoint", required=True,
                   help="run directory or model .safetensors (--checkpoint is an alias)")
    p.add_argument("--compare", action="append", default=[], help="more run directories, swept side by side")
    p.add_argument("--task", required=True, help="task name (multiseq.tasks) or module:function")
    p.add_argument("--split", default="val")
    p.add_argument("--task-option", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data", help="data folder of the task (root=)")
    p.add_argument("--noise", default="all", help="'all' or a comma-separated list of noise names")
    p.add_argument("--severity", type=_floats, help="comma-separated severities (text: 0..1, images: 1..5)")
    p.add_argument("--limit", type=int, help="evaluate on a seeded, class-balanced subset of N examples (--seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples for the drop's interval")
    p.add_argument("--examples", type=int, default=2, help="noised examples saved for inspection")
    p.add_argument("--out", default="robustness",
                   help="output folder (results.json, table.txt, table.md, accuracy_vs_severity.png, examples/)")
    p.add_argument("--quiet", action="store_true")


def run_robustness(args: argparse.Namespace) -> int:
    from multiseq.checkpoint import load_model, resolve_model_file
    from multiseq.robustness.report import plot_sweeps, save_examples, write_json, write_tables
    from multiseq.robustness.sweep import sweep
    from multiseq.tasks import load_task

    options = dict(args.task_option)
    if args.data:
        options["root"] = args.data
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, titles = {}, {}
    for run in [args.checkpoint, *args.compare]:
        model = load_model(resolve_model_file(run))
        # Each model reads the task through its own adapter (bytes, rendered text, pixels...).
        data = load_task(args.task, args.split, {**options}, args.limit, seed=args.seed)
        label = Path(run).name or str(run)
        if label in results:
            raise ConfigError(f"two runs share the name {label!r}; give them distinct directories")
        res = sweep(model, data, args.noise, args.severity, args.seed, args.batch_size, progress=not args.quiet,
                    bootstrap=args.bootstrap)
        res.update({"checkpoint": str(run), "task": args.task, "split": args.split})
        results[label] = res
        titles[label] = f"== {label} ({args.task}/{args.split})"
    write_json(results, out / "results.json")
    text = write_tables(results, out, titles)
    plot_sweeps(results, out / "accuracy_vs_severity.png")
    save_examples(data, out / "examples", args.noise, args.severity, args.seed, args.examples)
    print(text)
    print(f"wrote {out}/results.json, table.txt, table.md, accuracy_vs_severity.png, examples/")
    return 0

"""ViT patches against pixel sequences on CIFAR-10 under the image corruptions at severities 1 to 5.

    python examples/robustness_cifar10.py --out runs/robustness_cifar10          # trains both at their defaults
    python examples/robustness_cifar10.py --patches-run runs/cifar10_patches --pixels-run runs/cifar10_pixels \\
        --out runs/robustness_cifar10
    python examples/robustness_cifar10.py --tiny --out /tmp/robustness_cifar10   # under a minute

The two models: `examples/cifar10_patches.py` (4 x 4 RGB patches, 64 tokens) and a pixel-sequence model trained
here (`train_pixels`: the LRA Image view, 1,024 grayscale tokens, preset `--pixels-model`, default
`s4d_pixels_tiny`), both on the same seeded training images; finished runs are reused with `--patches-run` /
`--pixels-run`. Both are evaluated on the same `--eval-size` class-balanced validation images (the validation split
of the runs' seed), clean and under every corruption (`multiseq.robustness.image_noise`, CIFAR-10-C constants) at
severities 1 to 5, each image corrupted with its own seed, identically for both models. Every accuracy carries its
95% Wilson interval and every drop from clean a 95% paired-bootstrap interval over images. Writes `results.json`,
`table.txt`, `table.md`, `accuracy_vs_severity.png` (a panel per corruption, a line per model, interval bands),
`summary.json` and example grids under `examples/`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

PIXELS = "cifar10_pixels"


def train_pixels(argv: list[str] | None = None) -> dict:
    """Train the pixel-sequence CIFAR-10 model (grayscale tokens) with the shared example options."""
    p = _common.parser("Pixel-sequence CIFAR-10 (1,024 grayscale tokens)", model="s4d_pixels_tiny", steps=300,
                       batch_size=64, lr=2e-3)
    p.add_argument("--train-size", type=int, default=19200)
    p.add_argument("--val-size", type=int, default=1000)
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size = 6, 16, 96, 40
    import multiseq.tasks as tasks

    train_ds = tasks.get("cifar10", split="train", view="gray", root=args.data, seed=args.seed)
    val_ds = tasks.get("cifar10", split="val", view="gray", root=args.data, seed=args.seed)
    names = list(train_ds.classes)
    train = _common.View(train_ds, names, args.train_size, args.seed)
    val = _common.View(val_ds, names, args.val_size, args.seed)
    return _common.run(args, PIXELS, train, val)


def run_seed(run: Path) -> int | None:
    path = run / "config.json"
    if not (run / "model.safetensors").is_file() or not path.is_file():
        raise SystemExit(f"{run} is not a finished run (model.safetensors and config.json expected)")
    return json.loads(path.read_text()).get("train", {}).get("seed")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny models and sweep (under a minute on CPU)")
    p.add_argument("--out", default="runs/robustness_cifar10")
    p.add_argument("--data", default=None, help="CIFAR-10 archive or folder (default: the task's own)")
    p.add_argument("--patches-run", default=None, help="a finished cifar10_patches run directory to reuse")
    p.add_argument("--pixels-run", default=None, help="a finished pixel-sequence run directory to reuse")
    p.add_argument("--pixels-model", default="s4d_pixels_tiny", help="preset of the pixel-sequence model trained here")
    p.add_argument("--eval-size", type=int, default=1000, help="class-balanced validation images swept")
    p.add_argument("--noise", default="all")
    p.add_argument("--severity", default="1,2,3,4,5")
    p.add_argument("--seed", type=int, default=0, help="seed of the runs' train/val split and of the corruptions")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (drop intervals)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = (["--data", args.data] if args.data else []) + (["--tiny"] if args.tiny else []) + ["--overwrite"]
    common += (["--quiet"] if args.quiet else []) + ["--seed", str(args.seed)]
    common += ["--threads", str(args.threads)] if args.threads else []
    runs: dict[str, Path] = {}
    if args.patches_run:
        runs["patches"] = Path(args.patches_run)
    else:
        __import__("cifar10_patches").main(["--out", str(out / "patches"), *common])
        runs["patches"] = out / "patches"
    if args.pixels_run:
        runs["pixels"] = Path(args.pixels_run)
    else:
        train_pixels(["--out", str(out / "pixels"), "--model", args.pixels_model, *common])
        runs["pixels"] = out / "pixels"
    for k, run in runs.items():
        seed = run_seed(run)
        if seed is not None and seed != args.seed:
            raise SystemExit(f"run {run} was trained with seed {seed}, whose validation split differs from seed "
                             f"{args.seed}'s; pass --seed {seed}")

    import multiseq.tasks as tasks
    from multiseq.checkpoint import load_model
    from multiseq.robustness.report import write_report
    from multiseq.robustness.sweep import sweep

    size = 20 if args.tiny else args.eval_size
    levels = [1, 3, 5] if args.tiny else [int(s) for s in args.severity.split(",")]
    noises = "gaussian_noise,contrast" if args.tiny else args.noise
    val_ds = tasks.get("cifar10", split="val", view="patches", root=args.data, seed=args.seed)
    val = _common.View(val_ds, list(val_ds.classes), size, args.seed)
    results, titles = {}, {}
    for key, run in runs.items():
        model = load_model(run / "model.safetensors")
        res = sweep(model, val, noises, levels, seed=args.seed, batch_size=args.batch_size, progress=not args.quiet,
                    bootstrap=args.bootstrap)
        res.update(run=str(run), model=model.config.name, adapter=model.config.adapter.kind)
        results[key] = res
        titles[key] = f"== {key} ({model.config.name}, {run})"
    print(write_report(results, out, titles, val, noises, levels, args.seed))
    print(f"wrote {out}/results.json, table.txt, table.md, accuracy_vs_severity.png, summary.json, examples/")
    return results


if __name__ == "__main__":
    main()

"""ViT patches against pixel sequences on CIFAR-10 under the image corruptions at severities 1 to 5.

    python examples/robustness_cifar10.py --out runs/robustness_cifar10          # trains both at their defaults
    python examples/robustness_cifar10.py --patches-run runs/cifar10_patches --pixels-run runs/cifar10_pixels \\
        --out runs/robustness_cifar10
    python examples/robustness_cifar10.py --tiny --out /tmp/robustness_cifar10   # under a minute

The two models: `examples/cifar10_patches.py` (4 x 4 RGB patches, 64 tokens) and `examples/cifar10_pixels.py`
(the LRA Image view, 1,024 grayscale tokens, preset `--pixels-model`, default the CPU recipe `s4d_image_pixels`),
both on the same seeded training images; finished runs are reused with `--patches-run` /
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
    p.add_argument("--pixels-model", default="s4d_image_pixels", help="preset of the pixel-sequence model trained here")
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
        __import__("cifar10_pixels").main(["--out", str(out / "pixels"), "--model", args.pixels_model, *common])
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

"""Pixel-sequence Pathfinder (LRA): is there a path between the two dots? 32 x 32 images as 1,024 gray pixels.

    python examples/pathfinder_pixels.py --budget-minutes 15 --out runs/pathfinder_pixels   # the CPU recipe
    python examples/pathfinder_pixels.py --budget-minutes 15 --pretrain-fraction 0.25       # self-pretrain first
    python examples/pathfinder_pixels.py --tiny --out /tmp/pathfinder_pixels --data /tmp/pathfinder_data

Images are generated on first use (LRA's generator, contour length 14) into `--data` (default: the task cache)
and reused afterwards; one core makes about 30 images per second, so the default 20,000 training images take about
11 core-minutes once. The default model is the CPU recipe `s4d_pathfinder_pixels` (see `multiseq/presets/cpu.py`;
gray levels enter as values). Writes the run files of `multiseq.train.fit`, `metrics.json` and `samples.png`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "pathfinder_pixels"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="s4d_pathfinder_pixels", steps=600, batch_size=32,
                       lr=3e-3, weight_decay=0.05)
    p.add_argument("--train-size", type=int, default=20000, help="training images (LRA: 160,000)")
    p.add_argument("--val-size", type=int, default=2000, help="validation images (LRA: 20,000)")
    p.add_argument("--gen-workers", type=int, default=None, help="processes generating images (default: all cores)")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size = 6, 8, 24, 16
        args.budget_minutes = None if args.pretrain_fraction == 0 else 0.05
    import multiseq.tasks as tasks

    opts = dict(root=args.data, seed=args.seed, workers=args.gen_workers)
    names = ["no path", "path"]
    train = _common.View(tasks.get("pathfinder", split="train", size=args.train_size, **opts), names)
    val = _common.View(tasks.get("pathfinder", split="val", size=args.val_size, **opts), names)

    samples = _common.image_samples(val, names)
    return _common.run(args, NAME, train, val, samples=samples,
                       model_overrides={"adapter": _common.GRAY_VALUES_32},
                       extra={"input": "1024 gray pixels"})


if __name__ == "__main__":
    main()

"""LRA Image: CIFAR-10 as sequences of 1,024 grayscale pixels, classified by a long-sequence model.

    python examples/cifar10_pixels.py --budget-minutes 20 --out runs/cifar10_pixels        # the CPU recipe
    python examples/cifar10_pixels.py --budget-minutes 20 --pretrain-fraction 0.25         # self-pretrain first
    python examples/cifar10_pixels.py --tiny --out /tmp/cifar10_pixels                     # seconds

The default model is the CPU recipe `s4d_image_pixels` (a stem turning each image row and its neighbours into one
position, three S4D layers; gray levels enter as values; see `multiseq/presets/cpu.py`), trained on the whole
training split (45,000 images) and scored on the whole validation split (5,000, LRA's last 10 % of the CIFAR-10
train set, seeded). Images come from the CIFAR-10 JPEG copy (`--data`, default the task's own). Writes the run
files of `multiseq.train.fit` plus `metrics.json` and `samples.png` (a grid of validation images).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "cifar10_pixels"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="s4d_image_pixels", steps=600, batch_size=32, lr=3e-3,
                       weight_decay=0.05)
    p.add_argument("--train-size", type=int, default=None, help="training images (default: all 45,000)")
    p.add_argument("--val-size", type=int, default=None, help="validation images (default: all 5,000)")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size = 6, 16, 96, 40
        args.budget_minutes = None if args.pretrain_fraction == 0 else 0.05
    import multiseq.tasks as tasks

    train_ds = tasks.get("cifar10", split="train", view="gray", root=args.data, seed=args.seed)
    val_ds = tasks.get("cifar10", split="val", view="gray", root=args.data, seed=args.seed)
    names = list(train_ds.classes)
    train = _common.View(train_ds, names, args.train_size, args.seed)
    val = _common.View(val_ds, names, args.val_size, args.seed)

    samples = _common.image_samples(val, names)
    return _common.run(args, NAME, train, val, samples=samples,
                       model_overrides={"adapter": _common.GRAY_VALUES_32},
                       extra={"input": "1024 gray pixels"})


if __name__ == "__main__":
    main()

"""ViT patches on CIFAR-10: 32 x 32 RGB images cut into 4 x 4 patches (timm's PatchEmbed), 64 tokens per image.

    python examples/cifar10_patches.py --out runs/cifar10_patches
    python examples/cifar10_patches.py --tiny --out /tmp/cifar10_patches

Images come from the CIFAR-10 JPEG copy (`--data`, default the task's own); train and val divide its train split.
Writes the run files of `multiseq.train.fit` plus `metrics.json` and `samples.png` (a grid of val images).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "cifar10_patches"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="attention_patches_tiny", steps=300, batch_size=64, lr=2e-3)
    p.add_argument("--train-size", type=int, default=19200)
    p.add_argument("--val-size", type=int, default=1000)
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size = 6, 16, 96, 40
    import multiseq.tasks as tasks

    train_ds = tasks.get("cifar10", split="train", view="patches", root=args.data, seed=args.seed)
    val_ds = tasks.get("cifar10", split="val", view="patches", root=args.data, seed=args.seed)
    names = list(train_ds.classes)
    train = _common.View(train_ds, names, args.train_size, args.seed)
    val = _common.View(val_ds, names, args.val_size, args.seed)

    samples = _common.image_samples(val, names)
    return _common.run(args, NAME, train, val, samples=samples)


if __name__ == "__main__":
    main()

"""Pixel-sequence Pathfinder (LRA): is there a path between the two dots? 32 x 32 images as 1,024 gray tokens.

    python examples/pathfinder_pixels.py --out runs/pathfinder_pixels
    python examples/pathfinder_pixels.py --tiny --out /tmp/pathfinder_pixels --data /tmp/pathfinder_data

Images are generated on first use (LRA's generator, contour length 14) into `--data` (default: the task cache)
and reused afterwards. Writes the run files of `multiseq.train.fit`, `metrics.json` and `samples.png`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "pathfinder_pixels"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="s4d_pixels_tiny", steps=300, batch_size=32, lr=2e-3)
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--val-size", type=int, default=200)
    p.add_argument("--gen-workers", type=int, default=None, help="processes generating images (default: all cores)")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size = 6, 8, 24, 16
    import multiseq.tasks as tasks

    opts = dict(root=args.data, seed=args.seed, workers=args.gen_workers)
    names = ["no path", "path"]
    train = _common.View(tasks.get("pathfinder", split="train", size=args.train_size, **opts), names)
    val = _common.View(tasks.get("pathfinder", split="val", size=args.val_size, **opts), names)

    def samples(out: Path) -> None:
        rows = [val[i] for i in range(min(16, len(val)))]
        _common.save_image_grid(out / "samples.png", [r[0] for r in rows], [r[1] for r in rows], names)

    return _common.run(args, NAME, train, val, samples=samples)


if __name__ == "__main__":
    main()

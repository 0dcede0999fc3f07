"""Two-document retrieval (LRA Retrieval stand-in): are two IMDb reviews about the same movie? A dual encoder
reads each review as bytes; its head compares the two pooled vectors `[u, v, u*v, u-v]`.

    python examples/retrieval.py --out runs/retrieval
    python examples/retrieval.py --tiny --out /tmp/retrieval

Pairs come from `multiseq.tasks.get("retrieval")` (LRA's AAN files when `--data` points at them, otherwise the
IMDb same-movie pairs; train and val use disjoint movies). Writes the run files of `multiseq.train.fit`,
`metrics.json` and `samples.txt`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "retrieval"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="s4d_bytes_tiny", steps=300, batch_size=32, lr=2e-3)
    p.add_argument("--train-size", type=int, default=9600)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--max-length", type=int, default=1024, help="bytes per document (LRA: 4000)")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size, args.max_length = 6, 8, 32, 16, 256
    import multiseq.tasks as tasks

    opts = dict(root=args.data, seed=args.seed, max_length=args.max_length)
    names = ["different movies", "same movie"]
    train = _common.View(tasks.get("retrieval", split="train", **opts), names, args.train_size, args.seed)
    val = _common.View(tasks.get("retrieval", split="val", **opts), names, args.val_size, args.seed)
    adapter = {"kind": "bytes", "max_length": args.max_length, "options": {}}
    return _common.run(args, NAME, train, val, model_overrides={"adapter": adapter, "head": {"kind": "dual"}},
                       samples=lambda out: _common.write_text_samples(out / "samples.txt", [val[i] for i in range(8)]))


if __name__ == "__main__":
    main()

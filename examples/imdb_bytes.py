"""Byte-level IMDb (LRA Text): reviews as UTF-8 bytes, classified by a long-sequence model.

    python examples/imdb_bytes.py --out runs/imdb_bytes            # default budget: a few minutes on CPU
    python examples/imdb_bytes.py --tiny --out /tmp/imdb_bytes     # seconds

LRA reads 4,096 bytes per review; the default here is 1,024 to fit a CPU budget (`--max-length 4096` for LRA's).
Writes the run files of `multiseq.train.fit` plus `metrics.json` and `samples.txt`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "imdb_bytes"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="s4d_bytes_tiny", steps=300, batch_size=32, lr=2e-3)
    p.add_argument("--train-size", type=int, default=9600)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--max-length", type=int, default=1024, help="bytes per review (LRA: 4096)")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size, args.max_length = 6, 8, 48, 32, 256
    import multiseq.tasks as tasks

    opts = dict(root=args.data, seed=args.seed, max_length=args.max_length)
    names = ["neg", "pos"]
    train = _common.View(tasks.get("text", split="train", **opts), names, args.train_size, args.seed)
    val = _common.View(tasks.get("text", split="val", **opts), names, args.val_size, args.seed)
    adapter = {"kind": "bytes", "max_length": args.max_length, "options": {}}
    return _common.run(args, NAME, train, val, model_overrides={"adapter": adapter},
                       samples=lambda out: _common.write_text_samples(out / "samples.txt", [val[i] for i in range(8)]),
                       extra={"max_length": args.max_length})


if __name__ == "__main__":
    main()

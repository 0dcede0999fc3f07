"""Byte-level IMDb (LRA Text): reviews as UTF-8 bytes, classified by a long-sequence model.

    python examples/imdb_bytes.py --budget-minutes 30 --out runs/imdb_bytes       # the CPU recipe
    python examples/imdb_bytes.py --budget-minutes 30 --pretrain-fraction 0.3     # self-pretrain first
    python examples/imdb_bytes.py --tiny --out /tmp/imdb_bytes                    # seconds

The default model is the CPU recipe `s4d_imdb_bytes` (2,048 bytes per review, a stem merging 4 bytes into one
position, one S4D layer with LayerScale, mean+max pooling; see `multiseq/presets/cpu.py`), trained on the whole
training split (22,500 reviews) and scored on the whole validation split (2,500). After training, the example fits
scikit-learn's TF-IDF + logistic regression on the same reviews and prints its accuracy on the same split
(`--no-baseline` skips it). Writes the run files of `multiseq.train.fit`, `metrics.json` and `samples.txt`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "imdb_bytes"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="s4d_imdb_bytes", steps=600, batch_size=32, lr=3e-3,
                       weight_decay=0.05)
    p.add_argument("--train-size", type=int, default=None, help="reviews to train on (default: all 22,500)")
    p.add_argument("--val-size", type=int, default=None, help="validation reviews (default: all 2,500)")
    p.add_argument("--max-length", type=int, default=2048, help="bytes per review (LRA: 4096)")
    p.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + logistic-regression reference")
    p.add_argument("--train-noise", type=float, default=0.0, metavar="P",
                   help="attack each training review with probability P (a seeded random Zeroé attack at severity "
                        "0.2-0.8, the same in every epoch; multiseq.robustness.augment.NoisyTraining)")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size, args.max_length = 6, 8, 48, 32, 256
        args.budget_minutes = None if args.pretrain_fraction == 0 else 0.05
    import multiseq.tasks as tasks

    opts = dict(root=args.data, seed=args.seed, max_length=args.max_length)
    names = ["neg", "pos"]
    train = _common.View(tasks.get("text", split="train", **opts), names, args.train_size, args.seed)
    val = _common.View(tasks.get("text", split="val", **opts), names, args.val_size, args.seed)
    if args.train_noise:
        from multiseq.robustness.augment import NoisyTraining

        train = NoisyTraining(train, "all", args.train_noise, seed=args.seed)
    adapter = {"kind": "bytes", "max_length": args.max_length, "options": {}}
    summary = _common.run(
        args, NAME, train, val, model_overrides={"adapter": adapter},
        samples=lambda out: _common.write_text_samples(out / "samples.txt", [val[i] for i in range(8)]),
        extra={"max_length": args.max_length, "train_noise": args.train_noise},
    )
    if not args.no_baseline:
        _common.text_baseline(train, val, summary)
    return summary


if __name__ == "__main__":
    main()

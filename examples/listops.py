"""ListOps (LRA): evaluate nested MIN / MAX / MED / SM expressions over digits, 500 to 2,000 tokens long.

    python examples/listops.py --budget-minutes 15 --out runs/listops                 # the CPU recipe
    python examples/listops.py --budget-minutes 15 --pretrain-fraction 0.25           # self-pretrain first
    python examples/listops.py --tiny --out /tmp/listops --data /tmp/listops_data     # seconds

Expressions are generated on first use into `--data` (default: the task cache) and read by the task's own
adapter. The default model is the CPU recipe `s4d_listops_tokens` (a stem merging 4 tokens into one position, two
S4D layers; see `multiseq/presets/cpu.py`), trained on LRA's 96,000 training expressions and scored on its 2,000
validation ones. Writes the run files of `multiseq.train.fit`, `metrics.json` and `samples.txt`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "listops"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="s4d_listops_tokens", steps=600, batch_size=32, lr=3e-3,
                       weight_decay=0.05)
    p.add_argument("--train-size", type=int, default=96000, help="training expressions (LRA: 96,000)")
    p.add_argument("--val-size", type=int, default=2000, help="validation expressions (LRA: 2,000)")
    p.add_argument("--gen-workers", type=int, default=None, help="processes generating data (default: all cores)")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size = 6, 8, 32, 16
        args.budget_minutes = None if args.pretrain_fraction == 0 else 0.05
    import multiseq.tasks as tasks

    opts = dict(root=args.data, seed=args.seed, workers=args.gen_workers)
    names = [str(d) for d in range(10)]
    train = _common.View(tasks.get("listops", split="train", size=args.train_size, **opts), names)
    val = _common.View(tasks.get("listops", split="val", size=args.val_size, **opts), names)
    # The model reads ListOps with the task's own adapter (model_for_data takes it from the dataset).
    train.adapter = val.adapter = train.data.adapter
    return _common.run(args, NAME, train, val,
                       samples=lambda out: _common.write_text_samples(out / "samples.txt", [val[i] for i in range(8)]),
                       extra={"input": "ListOps tokens, <= 2,000"})


if __name__ == "__main__":
    main()

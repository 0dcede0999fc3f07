"""Rendered-text IMDb: reviews drawn as PIXEL-style strips (529 patches of 16x16) and classified from pixels.

    python examples/imdb_rendered.py --budget-minutes 30 --out runs/imdb_rendered     # the CPU recipe
    python examples/imdb_rendered.py --budget-minutes 30 --rendering bigrams          # two characters per patch
    python examples/imdb_rendered.py --tiny --out /tmp/imdb_rendered                  # seconds

The default model is the CPU recipe `s4d_imdb_render` (one S4D layer with LayerScale, mean+max pooling over
patches; `multiseq/presets/cpu.py`), trained on the whole training split and scored on the whole validation split,
with scikit-learn's TF-IDF + logistic regression on the same reviews printed beside it (`--no-baseline` skips it).
Reviews are rendered word by word by default (`--rendering words`: every word starts on a patch boundary, so a
word always gives the same patches); `bigrams` puts two characters in every patch; a model trained from scratch on
PIXEL's continuous rendering learns far more slowly. Reviews come from the IMDb train archive (`--data`, default
the task's own), split by `multiseq.tasks` into train and val. IMDb's `<br />` tags are replaced by spaces before
rendering (they would be drawn literally).
Writes the run files of `multiseq.train.fit` plus `metrics.json` and sample renders (`render_*.png`, the strip
and its squarified 368 x 368 view).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAME = "imdb_rendered"


def samples(out: Path, data, rendering: str, count: int = 4) -> None:
    from PIL import Image

    from renderers import TextRenderer, squarify

    renderer = TextRenderer.from_config("pixel")
    for i in range(count):
        text, label = data[i]
        r = renderer.render(text.split() if rendering == "words" else text, rendering=None if rendering == "words"
                            else rendering)
        Image.fromarray(r.pixels[:, : min(r.pixels.shape[1], 16 * (r.num_text_patches + 1))]).save(
            out / f"render_{i}_label{label}_strip.png")
        Image.fromarray(squarify(r.pixels)).save(out / f"render_{i}_label{label}_square.png")
    _common.write_text_samples(out / "samples.txt", [data[i] for i in range(count)])


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], model="s4d_imdb_render", steps=900, batch_size=32, lr=3e-3,
                       weight_decay=0.05)
    p.add_argument("--train-size", type=int, default=None, help="reviews to train on (default: all 22,500)")
    p.add_argument("--val-size", type=int, default=None, help="validation reviews (default: all 2,500)")
    p.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + logistic-regression reference")
    p.add_argument("--train-noise", type=float, default=0.0, metavar="P",
                   help="attack each training review with probability P (a seeded random Zeroé attack at severity "
                        "0.2-0.8, the same in every epoch; multiseq.robustness.augment.NoisyTraining)")
    p.add_argument("--patches", type=int, default=529, help="patches per strip (529 = PIXEL)")
    p.add_argument("--rendering", choices=("words", "bigrams", "continuous"), default="words",
                   help="words: every word starts on a patch boundary; bigrams: two characters per patch; "
                        "continuous: PIXEL's")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.val_size, args.patches = 6, 8, 48, 32, 128
        args.budget_minutes = None if args.pretrain_fraction == 0 else 0.05
    import multiseq.tasks as tasks

    def clean(text: str) -> str:
        return text.replace("<br />", " ")

    names, seed = ["neg", "pos"], args.seed
    train = _common.View(tasks.get("text", split="train", root=args.data, seed=seed), names, args.train_size, seed, clean)
    val = _common.View(tasks.get("text", split="val", root=args.data, seed=seed), names, args.val_size, seed, clean)
    if args.train_noise:
        from multiseq.robustness.augment import NoisyTraining

        train = NoisyTraining(train, "all", args.train_noise, seed=args.seed)
    options = {"config": "pixel", "rendering": args.rendering}
    adapter = {"kind": "render", "max_length": args.patches, "options": options}
    summary = _common.run(args, NAME, train, val, model_overrides={"adapter": adapter},
                          samples=lambda out: samples(out, val, args.rendering),
                          extra=options | {"patches": args.patches, "train_noise": args.train_noise})
    if not args.no_baseline:
        _common.text_baseline(train, val, summary)
    return summary


if __name__ == "__main__":
    main()

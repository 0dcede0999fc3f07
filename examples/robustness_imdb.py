"""Byte-level against rendered-text IMDb classifiers under the ten Zeroé-style text attacks.

    python examples/robustness_imdb.py --out runs/robustness_imdb          # trains both at their default budgets
    python examples/robustness_imdb.py --bytes-run runs/imdb_bytes --render-run runs/imdb_rendered --out runs/rob
    python examples/robustness_imdb.py --tiny --out /tmp/robustness_imdb   # seconds

Trains the two models with `imdb_bytes.py` and `imdb_rendered.py` (or reuses finished runs), then evaluates both on
the same validation reviews, clean and under every attack at severities 0.2, 0.5 and 0.8 (seeded per review).
Writes `results.json`, `table.txt`, `accuracy_vs_severity.png` (the two models side by side) and noised examples
with their rendered strips under `examples/`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny models and sweep (under a minute on CPU)")
    p.add_argument("--out", default="runs/robustness_imdb")
    p.add_argument("--data", default=None, help="IMDb archive or aclImdb folder (default: the task's own)")
    p.add_argument("--bytes-run", default=None, help="a finished imdb_bytes run directory to reuse")
    p.add_argument("--render-run", default=None, help="a finished imdb_rendered run directory to reuse")
    p.add_argument("--eval-size", type=int, default=500, help="validation reviews swept")
    p.add_argument("--noise", default="all")
    p.add_argument("--severity", default="0.2,0.5,0.8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = (["--data", args.data] if args.data else []) + (["--tiny"] if args.tiny else []) + ["--overwrite"]
    common += ["--quiet"] if args.quiet else []
    runs = {}
    for key, script, given in (("bytes", "imdb_bytes", args.bytes_run), ("rendered", "imdb_rendered", args.render_run)):
        if given:
            runs[key] = Path(given)
            continue
        module = __import__(script)
        module.main(["--out", str(out / key), *common])
        runs[key] = out / key

    import multiseq.tasks as tasks
    from multiseq.checkpoint import load_model
    from multiseq.robustness.report import plot_sweeps, save_examples, write_json
    from multiseq.robustness.sweep import format_table, sweep

    size = 16 if args.tiny else args.eval_size
    levels = [0.5] if args.tiny else [float(s) for s in args.severity.split(",")]
    noises = "truncate,confusable,phonetic" if args.tiny else args.noise
    val = _common.View(tasks.get("text", split="val", root=args.data, seed=args.seed), ["neg", "pos"], size,
                       args.seed, lambda t: t.replace("<br />", " "))
    results, tables = {}, []
    for key, run in runs.items():
        model = load_model(run / "model.safetensors")
        res = sweep(model, val, noises, levels, seed=args.seed, batch_size=16, progress=not args.quiet)
        res["run"] = str(run)
        results[key] = res
        tables.append(format_table(res, title=f"== {key} ({model.config.name}, {run})"))
    write_json(results, out / "results.json")
    (out / "table.txt").write_text("\n\n".join(tables) + "\n")
    plot_sweeps(results, out / "accuracy_vs_severity.png")
    save_examples(val, out / "examples", noises, levels, args.seed, count=2)
    print("\n\n".join(tables))
    summary = {k: {"clean": v["clean_accuracy"], "mean_noisy": sum(r["accuracy"] for r in v["rows"]) / len(v["rows"])}
               for k, v in results.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

"""Byte-level and rendered-text IMDb classifiers and the TF-IDF baseline under the ten Zeroé-style text attacks.

    python examples/robustness_imdb.py --out runs/robustness_imdb          # trains both at their default budgets
    python examples/robustness_imdb.py --bytes-run runs/imdb_bytes --render-run runs/imdb_rendered --out runs/rob
    python examples/robustness_imdb.py --bytes-run runs/imdb_bytes --render-run runs/imdb_rendered \\
        --extra-run bytes_noisy=runs/imdb_bytes_noisy --out runs/rob          # also a model trained with --train-noise
    python examples/robustness_imdb.py --tiny --out /tmp/robustness_imdb   # under a minute

Trains the two models with `imdb_bytes.py` and `imdb_rendered.py` (or reuses finished runs: the rendered run is
read with the rendering recorded in it), fits scikit-learn's TF-IDF + logistic regression on the same training
reviews as the byte run (`--no-tfidf` skips it), then evaluates every model on the same `--eval-size`
class-balanced validation reviews (the validation split of the runs' seed, `<br />` replaced by spaces), clean and
under every attack at severities 0.2, 0.5 and 0.8 (each review noised with its own seed, identically for every
model). Every accuracy carries its 95% Wilson interval and every drop from clean a 95% paired-bootstrap interval
over reviews (`multiseq.robustness.sweep`). Writes `results.json` (per-review outcomes included), `table.txt`,
`table.md`, `accuracy_vs_severity.png` (a panel per attack, a line per model, interval bands), `summary.json`,
noised examples with their rendered strips under `examples/`, and `goal.json`: under `confusable` and `phonetic` at
0.5, the rendered model's drop against half the byte model's and against TF-IDF's, as paired-bootstrap intervals
(`multiseq.robustness.compare`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NAMES = ["neg", "pos"]


def clean(text: str) -> str:
    return text.replace("<br />", " ")


def run_info(run: Path) -> dict:
    """Seed and training size of a finished example run (from its config.json)."""
    path = run / "config.json"
    if not (run / "model.safetensors").is_file() or not path.is_file():
        raise SystemExit(f"{run} is not a finished run (model.safetensors and config.json expected)")
    cfg = json.loads(path.read_text())
    return {"seed": cfg.get("train", {}).get("seed"), "train_size": cfg.get("task", {}).get("train_size")}


def goal(results: dict, out: Path, noises: tuple[str, ...] = ("confusable", "phonetic"), severity: float = 0.5,
         seed: int = 0) -> list[dict]:
    """The rendered model against the byte model (does it lose at most half as much?) and against TF-IDF (does it
    lose less?) under `noises` at `severity`, each with a paired bootstrap interval; written to `goal.json`."""
    from multiseq.robustness.compare import compare_drops

    checks = []
    for noise in noises:
        for other, factor in (("bytes", 0.5), ("tfidf", 1.0)):
            if "rendered" not in results or other not in results:
                continue
            if not any(r["noise"] == noise and r["severity"] == severity for r in results["rendered"]["rows"]):
                continue
            c = compare_drops(results["rendered"], results[other], noise, severity, factor=factor, seed=seed)
            c.update(a="rendered", b=other, holds=c["high"] < 0, refuted=c["low"] > 0)
            checks.append(c)
            verdict = "holds" if c["holds"] else "is refuted" if c["refuted"] else "is not decided at this size"
            print(f"{noise} {severity}: drop rendered {c['drop_a']:.3f}, {other} {c['drop_b']:.3f}; "
                  f"rendered - {factor:g} x {other} = {c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]: "
                  f"the goal {verdict}")
    (out / "goal.json").write_text(json.dumps(checks, indent=2) + "\n")
    return checks


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny models and sweep (under a minute on CPU)")
    p.add_argument("--out", default="runs/robustness_imdb")
    p.add_argument("--data", default=None, help="IMDb archive or aclImdb folder (default: the task's own)")
    p.add_argument("--bytes-run", default=None, help="a finished imdb_bytes run directory to reuse")
    p.add_argument("--render-run", default=None, help="a finished imdb_rendered run directory to reuse")
    p.add_argument("--extra-run", action="append", default=[], metavar="LABEL=DIR",
                   help="more finished IMDb runs swept beside them (e.g. bytes_noisy=runs/imdb_bytes_noisy)")
    p.add_argument("--no-tfidf", action="store_true", help="skip the TF-IDF + logistic-regression baseline")
    p.add_argument("--eval-size", type=int, default=2000, help="class-balanced validation reviews swept")
    p.add_argument("--noise", default="all")
    p.add_argument("--severity", default="0.2,0.5,0.8")
    p.add_argument("--seed", type=int, default=0, help="seed of the runs' train/val split and of the noise")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (drop intervals)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = (["--data", args.data] if args.data else []) + (["--tiny"] if args.tiny else []) + ["--overwrite"]
    common += ["--quiet"] if args.quiet else []
    common += ["--no-baseline", "--seed", str(args.seed)]
    runs: dict[str, Path] = {}
    for key, script, given in (("bytes", "imdb_bytes", args.bytes_run), ("rendered", "imdb_rendered", args.render_run)):
        if given:
            runs[key] = Path(given)
            continue
        __import__(script).main(["--out", str(out / key), *common])
        runs[key] = out / key
    for spec in args.extra_run:
        label, sep, path = spec.partition("=")
        if not sep or not label or label in runs or label == "tfidf":
            raise SystemExit(f"--extra-run takes LABEL=DIR with a new label, got {spec!r}")
        runs[label] = Path(path)
    infos = {k: run_info(r) for k, r in runs.items()}
    for k, info in infos.items():
        if info["seed"] is not None and info["seed"] != args.seed:
            raise SystemExit(f"run {runs[k]} was trained with seed {info['seed']}, whose validation split differs "
                             f"from seed {args.seed}'s; pass --seed {info['seed']}")

    import multiseq.tasks as tasks
    from multiseq.checkpoint import load_model
    from multiseq.robustness.report import write_report
    from multiseq.robustness.sweep import sweep

    size = 16 if args.tiny else args.eval_size
    levels = [0.5] if args.tiny else [float(s) for s in args.severity.split(",")]
    noises = "truncate,confusable,phonetic" if args.tiny else args.noise
    val = _common.View(tasks.get("text", split="val", root=args.data, seed=args.seed), NAMES, size, args.seed, clean)
    results, titles = {}, {}
    for key, run in runs.items():
        model = load_model(run / "model.safetensors")
        res = sweep(model, val, noises, levels, seed=args.seed, batch_size=args.batch_size, progress=not args.quiet,
                    bootstrap=args.bootstrap)
        options = model.config.adapter.options or {}
        res.update(run=str(run), model=model.config.name, adapter=model.config.adapter.kind,
                   rendering=options.get("rendering"), train_size=infos[key]["train_size"])
        results[key] = res
        titles[key] = f"== {key} ({model.config.name}, {run})"
    if not args.no_tfidf:
        from multiseq.baselines import text_baseline

        train_size = infos["bytes"]["train_size"]
        full = tasks.get("text", split="train", root=args.data, seed=args.seed)
        train = _common.View(full, NAMES, None if not train_size or train_size >= len(full) else train_size,
                             args.seed, clean)
        rows = [train[i] for i in range(len(train))]
        t0 = time.perf_counter()
        base = text_baseline([t for t, _ in rows], [y for _, y in rows], [val[0][0]], [val[0][1]])
        res = sweep(base.model, val, noises, levels, seed=args.seed, batch_size=512, bootstrap=args.bootstrap)
        res.update(run=None, model="tfidf_logreg", train_size=len(train), fit_seconds=round(base.seconds, 1),
                   sweep_seconds=round(time.perf_counter() - t0 - base.seconds, 1))
        results["tfidf"] = res
        titles["tfidf"] = f"== tfidf (TF-IDF 1-2 grams + logistic regression, fitted on {len(train)} training reviews)"
    print(write_report(results, out, titles, val, noises, levels, args.seed))
    goal(results, out, seed=args.seed)
    print(f"wrote {out}/results.json, table.txt, table.md, accuracy_vs_severity.png, summary.json, goal.json, "
          f"examples/")
    return results


if __name__ == "__main__":
    main()

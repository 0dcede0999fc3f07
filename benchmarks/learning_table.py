"""Collect the `metrics.json` of example runs into the learning results table (markdown) and a JSON-lines record.

    python benchmarks/learning_table.py runs/bytes_scratch runs/bytes_spt --out benchmarks/results/learning-cpu
    python benchmarks/learning_table.py RUNS... --out benchmarks/results/learning-cpu --readme README.md

Each run folder is one written by an example (`examples/imdb_bytes.py`, `examples/imdb_rendered.py`, ...) with its
budget, steps, samples seen, wall time, threads, load average, validation accuracy and, for text, the TF-IDF +
logistic-regression reference on the same split. The command that made a row is taken from `--commands` (one per
run, in order) or left for the reader to add. `--readme` also rewrites the compact table between the
`<!-- learning-table -->` markers of that file.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

COLUMNS = ("example", "model", "input", "stage", "precision", "budget (min)", "pretrain steps", "fine-tune steps", "samples seen",
           "wall (s)", "threads", "load avg", "val acc", "TF-IDF val acc", "majority", "val n")


def row(summary: dict) -> dict:
    pre = summary.get("pretrain_steps")
    bs = summary.get("batch_size", 0)
    return {
        "example": summary.get("example"),
        "model": summary.get("model"),
        "input": summary.get("input") or (
            f"{summary['rendering']} rendering, {summary.get('patches')} patches" if summary.get("rendering")
            else f"{summary.get('max_length')} bytes"),
        "precision": summary.get("precision", "auto"),
        "stage": f"SPT {summary['pretrain_fraction']:.0%} + fine-tune" if summary.get("pretrain_fraction") else "scratch",
        "budget (min)": summary.get("budget_minutes"),
        "pretrain steps": pre or 0,
        "fine-tune steps": summary.get("steps"),
        "samples seen": (pre or 0) * bs + summary.get("steps", 0) * bs,
        "wall (s)": summary.get("train_seconds"),
        "threads": summary.get("threads"),
        "load avg": summary.get("load_average", [None])[0],
        "val acc": round(summary["val_accuracy"], 4),
        "TF-IDF val acc": summary.get("tfidf_val_accuracy"),
        "majority": summary.get("majority_val_accuracy"),
        "val n": summary.get("val_size"),
    }


def readme_table(rows: list[dict]) -> str:
    """The compact table of the README: what ran, what it saw, how long, and what it scored against its reference."""
    lines = ["| task | model | input | stage | precision | samples seen | wall | val accuracy (n) | reference, same split |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        prec = "fp32" if r["precision"] == "auto" else r["precision"]
        ref = (f"TF-IDF {r['TF-IDF val acc']:.3f}" if r.get("TF-IDF val acc") is not None
               else f"majority {r['majority']:.3f}" if r.get("majority") is not None else "")
        lines.append(f"| {r['example']} | `{r['model']}` | {r['input']} | {r['stage']} | {prec} | {r['samples seen']:,} | "
                     f"{r['wall (s)'] / 60:.1f} min | **{r['val acc']:.3f}** ({r['val n']:,}) | {ref} |")
    return "\n".join(lines)


def write_readme(path: Path, table: str) -> None:
    """Replace the block between the learning-table markers of `path` with `table`."""
    text = path.read_text()
    block = f"<!-- learning-table -->\n{table}\n<!-- /learning-table -->"
    new, count = re.subn(r"<!-- learning-table -->.*?<!-- /learning-table -->", lambda _: block, text, flags=re.S)
    if count != 1:
        raise SystemExit(f"{path} needs exactly one <!-- learning-table --> ... <!-- /learning-table --> block, "
                         f"found {count}")
    path.write_text(new)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders holding metrics.json")
    p.add_argument("--out", required=True, help="output path without suffix (.md and .jsonl are written)")
    p.add_argument("--commands", nargs="*", default=None, help="the command of each run, in order")
    p.add_argument("--title", default="Learning on a 2-core CPU")
    p.add_argument("--readme", default=None, help="also rewrite the marked learning table of this file")
    p.add_argument("--notes", default=None, help="a file whose text is appended under the table (conditions)")
    args = p.parse_args(argv)
    rows, records = [], []
    for i, folder in enumerate(args.runs):
        summary = json.loads((Path(folder) / "metrics.json").read_text())
        r = row(summary)
        if args.commands and i < len(args.commands):
            r["command"] = args.commands[i]
        rows.append(r)
        records.append({**summary, "row": r})
    lines = [f"# {args.title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join("" if r[c] is None else str(r[c]) for c in COLUMNS) + " |")
    commands = [f"- {r['example']} ({r['stage']}): `{r['command']}`" for r in rows if r.get("command")]
    if commands:
        lines += ["", "Commands:", "", *commands]
    if args.notes:
        lines += ["", Path(args.notes).read_text().rstrip()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    if args.readme:
        write_readme(Path(args.readme), readme_table(rows))
    out.with_suffix(".jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in records))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Robustness reports: JSON, the accuracy-against-severity plot, and saved examples of the noised inputs."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from multiseq._io import atomic_write_bytes
from multiseq.robustness.sweep import NoisyDataset, modality, resolve_noises, resolve_severities


def write_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    atomic_write_bytes(path, json.dumps(result, indent=2).encode())
    return Path(path)


def plot_sweeps(results: dict[str, dict[str, Any]], path: str | os.PathLike) -> Path:
    """Accuracy against severity, one panel per noise, one line per model (`results`: model label -> sweep result,
    swept over the same inputs), with the 95% interval of every point as a band (Wilson; severity 0 is clean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["noise"] for res in results.values() for r in res["rows"]))
    cols = min(5, max(1, len(names)))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.9 * rows + 0.6), sharey=True, squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, noise in zip(axes.flat, names):
        for k, (label, res) in enumerate(results.items()):
            pts = sorted((r["severity"], r["accuracy"], r.get("accuracy_low", r["accuracy"]),
                          r.get("accuracy_high", r["accuracy"])) for r in res["rows"] if r["noise"] == noise)
            if not pts:
                continue
            clean = res["clean_accuracy"]
            xs = [0.0] + [p[0] for p in pts]
            ys = [clean] + [p[1] for p in pts]
            lo = [res.get("clean_low", clean)] + [p[2] for p in pts]
            hi = [res.get("clean_high", clean)] + [p[3] for p in pts]
            color = f"C{k % 10}"
            ax.plot(xs, ys, "o-", color=color, markersize=3, label=f"{label} (clean {clean:.3f})")
            ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)
        ax.set_title(noise, fontsize=9)
        ax.set_xlabel("severity", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for r in range(rows):
        axes[r][0].set_ylabel("accuracy", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    n = {res["n"] for res in results.values()}
    fig.legend(handles, labels, loc="upper center", ncol=max(1, len(labels)), fontsize=8, frameon=False)
    fig.text(0.5, 0.005, f"{', '.join(map(str, sorted(n)))} examples; bands: 95% Wilson intervals", ha="center",
             fontsize=7)
    fig.tight_layout(rect=(0, 0.02, 1, 1 - 0.35 / (2.9 * rows + 0.6)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_tables(results: dict[str, dict[str, Any]], out_dir: str | os.PathLike, titles: dict[str, str] | None = None) -> str:
    """`table.txt` (one plain table per model) and `table.md` (all models side by side) with 95% intervals;
    returns the text tables."""
    from multiseq.robustness.sweep import format_table, markdown_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join(format_table(res, title=(titles or {}).get(label, f"== {label}")) for label, res in results.items())
    atomic_write_bytes(out / "table.txt", (text + "\n").encode())
    atomic_write_bytes(out / "table.md", markdown_table(results).encode())
    return text


def save_examples(
    data: Any,
    out_dir: str | os.PathLike,
    noises: str | Sequence[str] = "all",
    severities: Sequence[float] | None = None,
    seed: int = 0,
    count: int = 2,
    render: bool = True,
) -> list[Path]:
    """Write noised versions of the first `count` inputs so a person can look at them: `examples.json` (text), and
    PNGs: rendered text strips (when the renderer is installed) or image grids."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind = modality(data)
    names = resolve_noises(kind, noises)
    levels = resolve_severities(kind, severities)
    written: list[Path] = []
    if kind == "text":
        rows = []
        for i in range(min(count, len(data))):
            x = data[i][0]
            x = x[0] if isinstance(x, tuple) else x
            row = {"index": i, "clean": x if isinstance(x, str) else x.decode("utf-8", "replace"), "noised": {}}
            for n in names:
                for s in levels:
                    row["noised"][f"{n}@{s:g}"] = NoisyDataset(data, n, s, seed).noised(x, i)
            rows.append(row)
        path = out / "examples.json"
        atomic_write_bytes(path, json.dumps(rows, indent=2, ensure_ascii=False).encode())
        written.append(path)
        if render:
            written += _render_strips(rows, out)
        return written
    for i in range(min(count, len(data))):
        x = data[i][0]
        tiles = [[_as_uint8(x)] * len(levels)]
        for n in names:
            tiles.append([_as_uint8(NoisyDataset(data, n, s, seed).noised(x, i)) for s in levels])
        path = out / f"example_{i}.png"
        _grid(tiles).save(path)
        written.append(path)
    return written


def _render_strips(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    try:
        from renderers import TextRenderer
    except ImportError:
        return []
    renderer = TextRenderer.from_config("pixel", errors="replace")
    paths = []
    for row in rows:
        texts = [row["clean"], *row["noised"].values()]
        strips = [renderer.render(t[:400]).pixels[:, :1600] for t in texts]
        gap = np.full((4, strips[0].shape[1]), 255, np.uint8)
        img = np.concatenate([np.concatenate([s, gap]) for s in strips])
        path = out / f"rendered_{row['index']}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def _as_uint8(x: Any) -> np.ndarray:
    from multiseq.adapters.images import to_float_array, to_rgb

    return (to_rgb(to_float_array(x)) * 255).round().astype(np.uint8)


def _grid(tiles: list[list[np.ndarray]], pad: int = 2) -> Image.Image:
    h, w = tiles[0][0].shape[:2]
    rows, cols = len(tiles), max(len(r) for r in tiles)
    canvas = np.full((rows * (h + pad), cols * (w + pad), 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, t in enumerate(row):
            canvas[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = t
    scale = max(1, 96 // h)
    img = Image.fromarray(canvas)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def write_report(
    results: dict[str, dict[str, Any]], out_dir: str | os.PathLike, titles: dict[str, str], data: Any,
    noises: Any, severities: Any, seed: int,
) -> str:
    """Everything a sweep of several models writes into `out_dir`: `results.json`, `table.txt`, `table.md`,
    `accuracy_vs_severity.png`, noised `examples/` of `data` and `summary.json` (per model: clean accuracy with its
    interval, mean accuracy under noise, and the largest drop with its interval). Returns the text table."""
    out = Path(out_dir)
    write_json(results, out / "results.json")
    text = write_tables(results, out, titles)
    plot_sweeps(results, out / "accuracy_vs_severity.png")
    save_examples(data, out / "examples", noises, severities, seed, count=2)
    summary = {
        k: {
            "clean": [v["clean_accuracy"], v["clean_low"], v["clean_high"]],
            "mean_noisy": sum(r["accuracy"] for r in v["rows"]) / len(v["rows"]),
            "largest_drop": max(
                ([r["drop"], r["drop_low"], r["drop_high"], r["noise"], r["severity"]] for r in v["rows"]),
                key=lambda r: r[0],
            ),
        }
        for k, v in results.items()
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return text

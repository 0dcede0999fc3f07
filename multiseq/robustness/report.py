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
    """Accuracy against severity, one line per noise; several models (e.g. byte-level and rendered-text) side by
    side, one panel each, same axes. `results`: model label -> sweep result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), sharey=True, squeeze=False)
    for ax, (label, res) in zip(axes[0], results.items()):
        names = list(dict.fromkeys(r["noise"] for r in res["rows"]))
        for n in names:
            pts = sorted((r["severity"], r["accuracy"]) for r in res["rows"] if r["noise"] == n)
            ax.plot([0] + [p[0] for p in pts], [res["clean_accuracy"]] + [p[1] for p in pts], "o-", markersize=3, label=n)
        ax.set_title(f"{label} (clean {res['clean_accuracy']:.3f})")
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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

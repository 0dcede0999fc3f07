"""Run plots: training/evaluation curves and a confusion matrix (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Loss and accuracy against steps, train and eval, from metrics.jsonl records. Writes a PNG."""
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for rows, name, style in ((train, "train", "-"), (evals, "val", "o-")):
        if rows:
            steps = [r["step"] for r in rows]
            ax_loss.plot(steps, [r["loss"] for r in rows], style, label=name, markersize=3)
            scored = [r for r in rows if r.get("accuracy") is not None]  # value reconstruction has no accuracy
            if scored:
                ax_acc.plot([r["step"] for r in scored], [r["accuracy"] for r in scored], style, label=name, markersize=3)
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | os.PathLike) -> Path:
    """Confusion matrix `confusion[true][pred]`, row-normalised colours with counts written in. Writes a PNG."""
    C = len(confusion)
    names = list(labels)[:C] if labels and len(labels) >= C else [str(i) for i in range(C)]
    totals = [max(1, sum(row)) for row in confusion]
    norm = [[v / t for v in row] for row, t in zip(confusion, totals)]
    size = min(12.0, 2.5 + 0.5 * C)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(C), names, rotation=45 if C > 4 else 0, ha="right" if C > 4 else "center")
    ax.set_yticks(range(C), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if C <= 20:
        for i in range(C):
            for j in range(C):
                ax.text(j, i, str(confusion[i][j]), ha="center", va="center", color="white" if norm[i][j] > 0.5 else "black", fontsize=8)
    acc = sum(confusion[i][i] for i in range(C)) / max(1, sum(map(sum, confusion)))
    ax.set_title(f"confusion matrix (accuracy {acc:.3f})")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike) -> Path:
    from multiseq._io import atomic_write_bytes
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)

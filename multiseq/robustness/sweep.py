"""Accuracy of a trained model under every noise type and severity, with the drop from clean.

    result = sweep(model, multiseq.tasks.get("text", split="val"), noises="all", seed=0)
    result["rows"]  # [{"noise", "severity", "accuracy", "drop"}, ...]

Text tasks (inputs `str` / `bytes`, or pairs of them) get the ten text attacks at severities 0.2, 0.5, 0.8; image
tasks (numpy / PIL / tensor images) get the image corruptions at severities 1 to 5. Each example is noised with a
seed derived from the sweep seed, the noise and the example's index, so every noised input can be regenerated.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from multiseq.errors import ConfigError
from multiseq.robustness.image_noise import CORRUPTIONS, corrupt
from multiseq.robustness.text_noise import ATTACKS, LEVELS, attack

IMAGE_SEVERITIES = (1, 2, 3, 4, 5)


def modality(data: Any) -> str:
    """`text` or `image`, from the dataset's first input."""
    if len(data) == 0:
        raise ConfigError("cannot sweep an empty dataset")
    x, _ = data[0]
    if isinstance(x, tuple):
        x = x[0]
    if isinstance(x, (str, bytes, bytearray)):
        return "text"
    if isinstance(x, (np.ndarray, Image.Image)) or hasattr(x, "shape"):
        return "image"
    raise ConfigError(f"cannot tell the modality of inputs of type {type(x).__name__}; expected text or images")


def _seed(seed: int, noise: str, severity: float, index: int) -> int:
    return zlib.crc32(f"{seed}/{noise}/{severity}/{index}".encode())


class NoisyDataset:
    """A view of a dataset whose inputs are noised on access; labels and attributes are the original ones."""

    def __init__(self, data: Any, noise: str, severity: float, seed: int = 0) -> None:
        self.data, self.noise, self.severity, self.seed = data, noise, severity, seed
        self.kind = modality(data)

    def __len__(self) -> int:
        return len(self.data)

    def noised(self, x: Any, index: int, part: int = 0) -> Any:
        s = _seed(self.seed, self.noise, self.severity, 2 * index + part)
        if self.kind == "text":
            text = x.decode("utf-8", errors="replace") if isinstance(x, (bytes, bytearray)) else x
            return attack(text, self.noise, float(self.severity), seed=s)
        return corrupt(x, self.noise, int(self.severity), seed=s)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        x, y = self.data[i]
        if isinstance(x, tuple):
            return tuple(self.noised(part, i, k) for k, part in enumerate(x)), y
        return self.noised(x, i), y

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["data"], name)


def resolve_noises(kind: str, noises: str | Sequence[str]) -> list[str]:
    """`all`, a comma-separated string or a list -> validated noise names for the modality."""
    valid = ATTACKS if kind == "text" else CORRUPTIONS
    names = list(valid) if noises == "all" else (noises.split(",") if isinstance(noises, str) else list(noises))
    for n in names:
        if n not in valid:
            raise ConfigError(f"{n!r} is not a {kind} noise; valid: {', '.join(valid)}")
    return names


def resolve_severities(kind: str, severities: Sequence[float] | None) -> list[float]:
    if severities is None:
        return list(LEVELS if kind == "text" else IMAGE_SEVERITIES)
    out = [float(s) for s in severities]
    if kind == "text" and not all(0.0 <= s <= 1.0 for s in out):
        raise ConfigError(f"text severities lie in [0, 1] (standard {LEVELS}), got {out}")
    if kind == "image" and not all(s in IMAGE_SEVERITIES for s in out):
        raise ConfigError(f"image severities are integers 1 to 5, got {out}")
    return out


def sweep(
    model: Any,
    data: Any,
    noises: str | Sequence[str] = "all",
    severities: Sequence[float] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate `model` on `data` clean and under each (noise, severity).

    Returns:
        `{"modality", "clean_accuracy", "n", "seed", "rows": [{"noise", "severity", "accuracy", "drop"}]}`.
    """
    from multiseq.train import evaluate

    kind = modality(data)
    names = resolve_noises(kind, noises)
    levels = resolve_severities(kind, severities)
    clean = evaluate(model, data, batch_size=batch_size, progress=progress)["accuracy"]
    rows = []
    for name in names:
        for sev in levels:
            acc = evaluate(model, NoisyDataset(data, name, sev, seed), batch_size=batch_size, progress=progress)["accuracy"]
            rows.append({"noise": name, "severity": sev, "accuracy": acc, "drop": clean - acc})
    return {"modality": kind, "clean_accuracy": clean, "n": len(data), "seed": seed, "rows": rows}


def format_table(result: dict[str, Any], title: str = "") -> str:
    """A plain-text table: one row per noise, one column per severity (accuracy and drop from clean)."""
    levels = sorted({r["severity"] for r in result["rows"]})
    names = list(dict.fromkeys(r["noise"] for r in result["rows"]))
    acc = {(r["noise"], r["severity"]): r for r in result["rows"]}
    head = f"{'noise':<18}" + "".join(f"{'sev ' + format(s, 'g'):>16}" for s in levels)
    lines = [title] if title else []
    lines += [f"clean accuracy {result['clean_accuracy']:.3f} on {result['n']} examples", head]
    for n in names:
        cells = "".join(f"{acc[(n, s)]['accuracy']:>8.3f} ({-acc[(n, s)]['drop']:+.3f})" for s in levels)
        lines.append(f"{n:<18}{cells}")
    return "\n".join(lines)

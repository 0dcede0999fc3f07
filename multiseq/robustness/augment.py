"""Noisy training: a dataset view whose training inputs are attacked (text) or corrupted (images) at random.

    from multiseq.robustness.augment import NoisyTraining
    train = NoisyTraining(train, noises="all", probability=0.5, severity_range=(0.2, 0.8), seed=0)

Each item is attacked with probability `probability`, by one noise drawn uniformly from `noises` at a severity
drawn uniformly from `severity_range` (text: a float in [0, 1]; images: an integer from the range, inclusive).
Every choice comes from a generator seeded by `(seed, index)` only, so an item is the same in every epoch, in every
DataLoader worker and after a resume (`plan(i)` says what item i gets). Labels and dataset attributes (adapter,
classes, labels...) are the original ones.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from typing import Any

from multiseq.errors import ConfigError
from multiseq.robustness.image_noise import corrupt
from multiseq.robustness.sweep import modality, resolve_noises
from multiseq.robustness.text_noise import attack


class NoisyTraining:
    """`data` with each input noised with probability `probability` (see the module docstring)."""

    def __init__(self, data: Any, noises: str | Sequence[str] = "all", probability: float = 0.5,
                 severity_range: tuple[float, float] | None = None, seed: int = 0) -> None:
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0.0 <= probability <= 1.0:
            raise ConfigError(f"the noise probability must lie in [0, 1], got {probability!r}")
        self.data, self.probability, self.seed = data, float(probability), int(seed)
        self.kind = modality(data)
        self.noises = resolve_noises(self.kind, noises)
        lo, hi = severity_range if severity_range is not None else ((0.2, 0.8) if self.kind == "text" else (1, 5))
        if not lo <= hi:
            raise ConfigError(f"severity_range must be (low, high) with low <= high, got {severity_range}")
        if self.kind == "text" and not (0.0 <= lo and hi <= 1.0):
            raise ConfigError(f"text severities lie in [0, 1], got {severity_range}")
        if self.kind == "image" and not (1 <= lo and hi <= 5 and float(lo).is_integer() and float(hi).is_integer()):
            raise ConfigError(f"image severities are integers 1 to 5, got {severity_range}")
        self.severity_range = (lo, hi)

    def __len__(self) -> int:
        return len(self.data)

    def _rng(self, index: int) -> random.Random:
        return random.Random(zlib.crc32(f"noisy-training/{self.seed}/{index}".encode()))

    def plan(self, index: int) -> tuple[str, float, int] | None:
        """`(noise, severity, noise seed)` applied to item `index`, or None when it stays clean."""
        rng = self._rng(index)
        if rng.random() >= self.probability:
            return None
        noise = rng.choice(self.noises)
        lo, hi = self.severity_range
        severity = rng.uniform(lo, hi) if self.kind == "text" else rng.randint(int(lo), int(hi))
        return noise, severity, rng.getrandbits(32)

    def _noised(self, x: Any, noise: str, severity: float, seed: int) -> Any:
        if self.kind == "image":
            return corrupt(x, noise, int(severity), seed=seed)
        if isinstance(x, (bytes, bytearray)):
            return attack(x.decode("utf-8", errors="replace"), noise, severity, seed=seed).encode("utf-8")
        return attack(x, noise, severity, seed=seed)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        x, y = self.data[i]
        plan = self.plan(i + len(self) if i < 0 else i)
        if plan is None:
            return x, y
        noise, severity, seed = plan
        if isinstance(x, tuple):
            return tuple(self._noised(part, noise, severity, seed + k) for k, part in enumerate(x)), y
        return self._noised(x, noise, severity, seed), y

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "data" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["data"], name)

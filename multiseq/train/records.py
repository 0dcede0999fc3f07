"""Small records the training loop passes around instead of long positional argument lists."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from multiseq.train.config import TrainConfig
from multiseq.train.distributed import _all_sum


@dataclass(frozen=True)
class RunContext:
    """Where and how a run happens: process rank and count, device, run directory, settings, data size, labels."""

    rank: int
    world: int
    device: torch.device
    run_dir: Path | None
    cfg: TrainConfig
    n: int
    labels: list[str]
    progress: bool

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, checkpoints and writes the run directory."""
        return self.rank == 0

    @property
    def writes(self) -> bool:
        return self.run_dir is not None and self.rank == 0

    def epoch(self, step: int) -> float:
        return step * self.cfg.batch_size / self.n


@dataclass(frozen=True)
class Plan:
    """The step schedule: `total` optimiser steps, `warmup` of them linear; a budget run also has `budget_s`."""

    total: int
    warmup: int
    budget_s: float | None = None


class Window:
    """Sums over the steps since the last log line: loss x count, hits, count, and their (non-evaluation) time."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss, self.correct, self.count = 0.0, 0.0, 0.0
        self.t = time.perf_counter()

    def add(self, loss: float, correct: float, count: float) -> None:
        """`loss` is the mean over `count` scored items."""
        self.loss += loss * count
        self.correct += correct
        self.count += count

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` (an evaluation) out of the throughput."""
        self.t += seconds

    def drain(self, world: int, device: torch.device) -> tuple[float, float, float, float]:
        """(mean loss, accuracy, count, seconds) over all processes; then starts a new window."""
        loss, correct, count = _all_sum([self.loss, self.correct, self.count], world, device)
        seconds = max(time.perf_counter() - self.t, 1e-9)
        self.reset()
        return loss / max(count, 1), correct / max(count, 1), count, seconds


class Clock:
    """Wall time of this process's run and its training time: evaluation excluded, earlier sessions of a resumed
    run (`spent`, from the checkpoint) included. The budget counts training time."""

    def __init__(self, spent: float = 0.0) -> None:
        self.t0 = time.perf_counter()
        self.spent, self.excluded = spent, 0.0

    def exclude(self, seconds: float) -> None:
        self.excluded += seconds

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def train_s(self) -> float:
        return self.spent + self.wall_s - self.excluded

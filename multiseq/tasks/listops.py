"""ListOps (Nangia & Bowman 2018) as LRA generates it, clean-room.

Trees of the operators MIN, MAX, MED (truncated median) and SM (sum mod 10) over digits 0..9: at depth `d`
(the root is depth 1) a node is a leaf with probability 0.75 while `d < max_depth`, and always at `max_depth`;
an operator node has 2..`max_args` children. A tree is kept when its token count (operators, digits and the
closing `]`) lies strictly between `min_length` and `max_length`; duplicates are removed.

Strings use LRA's form, every (pair) node written `( A B )`: `[MAX 4 9]` is `( ( ( [MAX 4 ) 9 ) ] )`.
Files are LRA's TSV: a `Source\\tTarget` header, then one tree and its value per line.

Generation is split into fixed chunks of attempts, each with its own seed, so the output does not depend on the
number of worker processes and a smaller set is a prefix of a larger one.
"""

from __future__ import annotations

import csv
import io
import os
import random
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multiseq._io import atomic_write_text
from multiseq.config import AdapterConfig
from multiseq.errors import ConfigError
from multiseq.tasks._common import DataError, SkipLog, TaskDataset, cache_root, check_positive, check_split, file_lock
from multiseq.tasks.registry import register_task

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
LRA_SIZES = {"train": 96_000, "val": 2_000, "test": 2_000}
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
CHUNK_ATTEMPTS = 2048


@dataclass(frozen=True)
class ListOpsSpec:
    """Generator parameters (LRA's `basic` task)."""

    max_depth: int = 10
    max_args: int = 10
    min_length: int = 500
    max_length: int = 2000
    leaf_prob: float = 0.75

    def __post_init__(self) -> None:
        if self.max_depth < 1 or self.max_args < 2 or not 0 <= self.min_length < self.max_length:
            raise ConfigError(f"invalid ListOps parameters {self}")
        if not 0.0 <= self.leaf_prob <= 1.0:
            raise ConfigError(f"leaf_prob must be in [0, 1], got {self.leaf_prob}")


class _TooLong(Exception):
    pass


def _apply(op: str, args: list[int]) -> int:
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[SM":
        return sum(args) % 10
    s = sorted(args)  # [MED: numpy's median, truncated to int (mean of the two middle values when even)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2


def _attempt(rng: random.Random, spec: ListOpsSpec) -> tuple[str, int, int] | None:
    """One draw of the tree process. Returns (string, value, tokens) when accepted, else None.

    Drawing stops as soon as the tree reaches `max_length` tokens: such a tree is rejected whatever the rest of
    it would be, so stopping early changes neither the acceptance rate nor the accepted trees' distribution.
    """
    parts: list[str] = []
    count = [0]
    limit = spec.max_length
    rand, randint = rng.random, rng.randint
    max_depth, max_args, p_op = spec.max_depth, spec.max_args, 1.0 - spec.leaf_prob

    def gen(depth: int) -> int:
        if depth < max_depth and rand() < p_op:
            k = randint(2, max_args)
            op = OPERATORS[randint(0, 3)]
            parts.append("( " * (k + 1) + op)
            count[0] += 2  # the operator and its `]`
            args = []
            for _ in range(k):
                parts.append(" ")
                args.append(gen(depth + 1))
                parts.append(" )")
            parts.append(" ] )")
            if count[0] >= limit:
                raise _TooLong
            return _apply(op, args)
        v = randint(0, 9)
        parts.append(str(v))
        count[0] += 1
        return v

    try:
        value = gen(1)
    except _TooLong:
        return None
    n = count[0]
    if not spec.min_length < n < spec.max_length:
        return None
    return "".join(parts), value, n


def _chunk(args: tuple[int, int, int, ListOpsSpec]) -> tuple[list[tuple[str, int]], int]:
    """Chunk `index` of stream (seed, split): CHUNK_ATTEMPTS draws. Returns accepted (source, value) and draws."""
    seed, split_id, index, spec = args
    state = np.random.SeedSequence([seed, split_id, index]).generate_state(2)
    rng = random.Random(int(state[0]) << 32 | int(state[1]))
    out = []
    for _ in range(CHUNK_ATTEMPTS):
        r = _attempt(rng, spec)
        if r is not None:
            out.append((r[0], r[1]))
    return out, CHUNK_ATTEMPTS


def generate(
    n: int,
    seed: int = 0,
    split: str = "train",
    spec: ListOpsSpec | None = None,
    workers: int | None = None,
    progress: bool = False,
    stats: dict[str, Any] | None = None,
) -> list[tuple[str, int]]:
    """Generate `n` unique accepted trees of one split's stream.

    Args:
        n: number of samples.
        seed: stream seed; each split has its own stream (duplicates across splits are astronomically unlikely
            for trees of 500+ tokens; the tests check that small sets are disjoint).
        workers: processes (default: all cores; 1 = in-process).
        stats: if given, filled with `attempts` and `accepted` (before deduplication).

    Returns:
        `[(source, label), ...]` in stream order.
    """
    check_positive("n", n, allow_none=False)
    spec = spec or ListOpsSpec()
    split_id = _SPLIT_IDS[check_split(split)]
    workers = workers or os.cpu_count() or 1
    if n <= 50:  # a chunk or two: starting processes would cost more than it saves (output is the same)
        workers = 1
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    attempts = accepted = 0
    bar = _progress(n, progress)
    index = 0
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        while len(out) < n:
            # Estimate chunks still needed from the acceptance so far (about 8%), at least one per worker.
            rate = max(accepted / attempts, 0.02) if attempts else 0.08
            need = int((n - len(out)) / (rate * CHUNK_ATTEMPTS)) + 1
            batch = max(need, workers if pool else 1)
            jobs = [(seed, split_id, index + j, spec) for j in range(batch)]
            index += batch
            results = pool.map(_chunk, jobs) if pool else map(_chunk, jobs)
            for items, tried in results:
                attempts += tried
                accepted += len(items)
                for src, label in items:
                    if len(out) < n and src not in seen:
                        seen.add(src)
                        out.append((src, label))
                if bar is not None:
                    bar.n = len(out)
                    bar.refresh()
    finally:
        if pool:
            pool.shutdown()
        if bar is not None:
            bar.close()
    if stats is not None:
        stats.update(attempts=attempts, accepted=accepted)
    return out


def _progress(n: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=n, desc="listops", unit="tree")


# ---------------------------------------------------------------------------------------------------------------
# Parsing and evaluation of the string form (independent of the generator: used to check labels and to preview).


def tokens(source: str) -> list[str]:
    """LRA's preprocessing: `]` -> `X`, parentheses dropped, split on whitespace (the listops adapter uses it too)."""
    return source.replace("]", "X").replace("(", "").replace(")", "").split()


def evaluate(source: str) -> int:
    """Value of a ListOps string, computed with a stack over its tokens. Raises `ValueError` if malformed."""
    stack: list[list[Any]] = []
    result = None
    for tok in tokens(source):
        if tok in OPERATORS:
            stack.append([tok])
        elif tok == "X":
            if not stack or len(stack[-1]) < 2:
                raise ValueError(f"unbalanced or empty operator in {source[:60]!r}")
            op, *args = stack.pop()
            v = _apply(op, args)
            if stack:
                stack[-1].append(v)
            else:
                result = v
        elif len(tok) == 1 and tok.isdigit():
            if not stack:
                if result is None and len(tokens(source)) == 1:
                    return int(tok)
                raise ValueError(f"digit outside any operator in {source[:60]!r}")
            stack[-1].append(int(tok))
        else:
            raise ValueError(f"unknown ListOps token {tok!r}")
    if stack or result is None:
        raise ValueError(f"unclosed operator in {source[:60]!r}")
    return result


def depth(source: str) -> int:
    """Operator nesting depth (a bare digit has depth 0)."""
    d = best = 0
    for tok in tokens(source):
        if tok in OPERATORS:
            d += 1
            best = max(best, d)
        elif tok == "X":
            d -= 1
    return best


def tree_text(source: str, max_lines: int = 40) -> str:
    """An indented outline of a ListOps tree (for `multiseq data preview`)."""
    lines: list[str] = []
    d = 0
    leaves: list[str] = []

    def flush() -> None:
        if leaves:
            lines.append("  " * d + " ".join(leaves))
            leaves.clear()

    for tok in tokens(source):
        if tok in OPERATORS:
            flush()
            lines.append("  " * d + tok[1:])
            d += 1
        elif tok == "X":
            flush()
            d -= 1
        else:
            leaves.append(tok)
    flush()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines)"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# LRA TSV files.


def write_tsv(path: str | os.PathLike, rows: Iterable[tuple[str, int]]) -> None:
    """Write LRA's TSV (`Source\\tTarget` header), atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["Source", "Target"])
    for src, label in rows:
        w.writerow([src, int(label)])
    atomic_write_text(Path(path), buf.getvalue())


def read_tsv(path: str | os.PathLike, on_error: str = "raise", limit: int | None = None) -> tuple[list[str], list[int], list[str]]:
    """Read an LRA ListOps TSV. Returns (sources, labels, skipped messages).

    Bad rows (wrong column count, a label outside 0..9, an empty source) raise `DataError` naming the file and
    line, or are skipped and reported with `on_error='skip'`.
    """
    path = Path(path)
    log = SkipLog(on_error, f"ListOps file {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"ListOps file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.splitlines()
    if not lines:
        raise DataError(f"{path}: empty file (expected a 'Source\\tTarget' header and rows)")
    header = lines[0].split("\t")
    if [h.strip() for h in header] != ["Source", "Target"]:
        raise DataError(f"{path}:1: expected header 'Source\\tTarget', got {lines[0][:80]!r}")
    sources, labels = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if limit is not None and len(sources) >= limit:
            break
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0].strip():
            log.bad(f"{path}:{lineno}: expected 2 tab-separated columns (Source, Target), got {len(cols)}")
            continue
        try:
            label = int(cols[1])
        except ValueError:
            log.bad(f"{path}:{lineno}: label {cols[1][:20]!r} is not an integer")
            continue
        if not 0 <= label <= 9:
            log.bad(f"{path}:{lineno}: label {label} outside 0..9")
            continue
        sources.append(cols[0])
        labels.append(label)
    log.report()
    return sources, labels, log.items


def lra_file(root: Path, split: str) -> Path:
    return root / "listops" / f"basic_{split}.tsv"


def ensure_split(
    split: str,
    root: str | os.PathLike | None = None,
    size: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Path of the TSV for a split, generating it first if it is not cached.

    The default (`size=None`, `seed=0`) is LRA's layout `<root>/listops/basic_{split}.tsv` with LRA's sizes, so a
    user's copy of the original release placed there is used as is. Other sizes or seeds are cached under
    `<root>/listops/seed<seed>/`, reusing any larger cached file of the same stream (a smaller set is its prefix).
    """
    split = check_split(split)
    check_positive("size", size)
    base = cache_root(root)
    if size is None and seed == 0:
        path = lra_file(base, split)
        n = LRA_SIZES[split]
    else:
        n = size if size is not None else LRA_SIZES[split]
        folder = base / "listops" / f"seed{seed}"
        for p in sorted(folder.glob(f"basic_{split}_n*.tsv")) if folder.is_dir() else []:
            try:
                have = int(p.stem.rsplit("_n", 1)[1])
            except ValueError:
                continue
            if have >= n:
                return p
        path = folder / f"basic_{split}_n{n}.tsv"
    if path.exists():
        return path
    # An flock, not the lock file's existence: a build killed midway leaves a .lock file that blocks nothing.
    with file_lock(path.with_name(path.name + ".lock")):
        if not path.exists():  # another process may have finished while we waited
            _announce(split, n, path, workers)
            rows = generate(n, seed=seed, split=split, workers=workers, progress=progress)
            write_tsv(path, rows)
    return path


TREES_PER_SECOND = 250  # per process, measured on the 2-core CI kind of machine (about 360 when idle)


def _announce(split: str, n: int, path: Path, workers: int | None) -> None:
    """Say, before a build of more than a few seconds, what is built, where, and about how long it takes."""
    procs = workers or os.cpu_count() or 1
    seconds = n / (TREES_PER_SECOND * procs)
    if seconds < 10:
        return
    took = f"about {seconds / 60:.0f} minutes" if seconds >= 90 else f"about {seconds:.0f} s"
    print(f"multiseq: generating ListOps {split}: {n:,} trees into {path} ({took} on {procs} processes; "
          f"once, then cached; `multiseq data generate listops` builds it ahead)", file=sys.stderr, flush=True)


@register_task("listops", "LRA ListOps, generated (10 classes, <= 2,000 tokens)", generated=True)
class ListOpsDataset(TaskDataset):
    """LRA ListOps: `ds[i] -> (source string, label 0..9)`.

    Args:
        split: `train`, `val` or `test`.
        root: cache directory (default `$MULTISEQ_DATA` or `~/.cache/multiseq`).
        size: number of samples (default LRA's 96,000 / 2,000 / 2,000), generated on first use.
        seed: generator seed.
        path: read this TSV instead (e.g. LRA's `basic_val.tsv`); `size` then keeps the first rows.
        max_length: adapter length (LRA: 2,000).
        workers: generator processes (default all cores).
        on_error: `raise` or `skip` for bad TSV rows.
    """

    task = "listops"
    num_classes = 10

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        size: int | None = None,
        seed: int = 0,
        path: str | os.PathLike | None = None,
        max_length: int = 2000,
        workers: int | None = None,
        on_error: str = "raise",
        progress: bool = False,
    ) -> None:
        super().__init__()
        self.split = check_split(split)
        check_positive("max_length", max_length, allow_none=False)
        if path is None:
            path = ensure_split(split, root=root, size=size, seed=seed, workers=workers, progress=progress)
        self.path = Path(path)
        self.sources, labels, self.skipped = read_tsv(self.path, on_error=on_error, limit=size)
        if size is not None and len(self.sources) < size:
            raise DataError(f"{self.path} holds {len(self.sources)} rows, fewer than size={size}")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.adapter = AdapterConfig("listops", max_length=max_length)

    def __getitem__(self, i: int) -> tuple[str, int]:
        i = self._index(i)
        return self.sources[i], int(self.labels[i])

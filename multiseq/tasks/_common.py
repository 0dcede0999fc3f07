"""Shared pieces of the task loaders: cache directory, atomic writes, a file lock, the bad-data policy, seeded
splits and the dataset base class."""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from multiseq.config import AdapterConfig
from multiseq.errors import ConfigError

SPLITS = ("train", "val", "test")
POLICIES = ("raise", "skip")
SHARED_DATA = Path(os.environ.get("MULTISEQ_SHARED_DATA", "/work/shared/data"))


class DataError(ValueError):
    """A data file is missing, malformed or refused (names the file and, where it applies, the line)."""


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """Where generated tasks live: `root`, else `$MULTISEQ_DATA`, else `~/.cache/multiseq`."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MULTISEQ_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "multiseq"


def check_split(split: str, allowed: Sequence[str] = SPLITS) -> str:
    if split not in allowed:
        raise ConfigError(f"split must be one of {tuple(allowed)}, got {split!r}")
    return split


def check_policy(on_error: str) -> str:
    if on_error not in POLICIES:
        raise ConfigError(f"on_error must be 'raise' (stop at the first bad item) or 'skip' (count and report), "
                          f"got {on_error!r}")
    return on_error


def check_positive(name: str, value: Any, allow_none: bool = True) -> Any:
    if value is None and allow_none:
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")
    return value


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on `path` (created), so two processes never generate the same cache at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class SkipLog:
    """Collects bad items under the `skip` policy, or raises at the first one under `raise`.

    Every skipped item is recorded (`items`) and summarised in one warning by `report()`: nothing is dropped
    silently.
    """

    def __init__(self, on_error: str, what: str) -> None:
        self.on_error = check_policy(on_error)
        self.what = what
        self.items: list[str] = []

    def bad(self, message: str) -> None:
        if self.on_error == "raise":
            raise DataError(f"{message} (pass on_error='skip' to skip bad items, counted and reported)")
        self.items.append(message)

    def report(self) -> None:
        if self.items:
            shown = "; ".join(self.items[:5]) + (" ..." if len(self.items) > 5 else "")
            warnings.warn(f"{self.what}: skipped {len(self.items)} bad item(s): {shown}", stacklevel=3)


def seeded_permutation(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).permutation(n)


def holdout_split(n: int, split: str, val_fraction: float, seed: int) -> np.ndarray:
    """Indices of a seeded train/val division of `n` items (`val` = a random `val_fraction` of them), in a seeded
    random order: source files list items class by class, so their order is never kept."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    perm = seeded_permutation(n, seed)
    n_val = int(round(n * val_fraction))
    return perm[:n_val] if split == "val" else perm[n_val:]


def split_indices(n: int, split: str, val_fraction: float, seed: int, size: int | None, labels: np.ndarray) -> np.ndarray:
    """Indices of a split in a seeded order: `test` is all `n` items, `train`/`val` a seeded holdout division;
    with `size`, a seeded class-balanced subset of them (`balanced_indices`). `labels`: (n,) every item's label."""
    from multiseq.tasks.subset import balanced_indices

    check_positive("size", size)
    idx = seeded_permutation(n, seed) if split == "test" else holdout_split(n, split, val_fraction, seed)
    if size is not None:
        idx = idx[balanced_indices(np.asarray(labels)[idx], size, seed)]
    return idx


class TaskDataset(Dataset):
    """Base class of every task dataset: `ds[i] -> (inputs, label)` with raw inputs.

    Attributes:
        task: task name as `multiseq.tasks.get` knows it.
        num_classes: number of labels.
        pair: True when inputs are `(doc1, doc2)`.
        adapter: an `AdapterConfig` that turns these raw inputs into `(x, mask)`.
        labels: every label (int64 array), readable without loading inputs.
        skipped: messages of the items skipped under `on_error='skip'` (empty otherwise).
        label_names: a name per class (for reports and confusion matrices).
    """

    task: str = ""
    num_classes: int = 2
    pair: bool = False
    adapter: AdapterConfig = AdapterConfig()
    split: str = "train"

    def __init__(self) -> None:
        self.labels: np.ndarray = np.zeros(0, dtype=np.int64)
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def label_names(self) -> list[str]:
        names = getattr(self, "_label_names", None)
        return list(names) if names else [str(k) for k in range(self.num_classes)]

    def __getitem__(self, i: int) -> tuple[Any, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _index(self, i: int) -> int:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset index must be an int, got {type(i).__name__}")
        if i < -n or i >= n:
            raise IndexError(f"index {i} out of range for {self.task} {self.split} with {n} items")
        return int(i) % n

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(task={self.task!r}, split={self.split!r}, n={len(self)}, "
                f"num_classes={self.num_classes}, adapter={self.adapter.kind}:{self.adapter.max_length})")


MAX_IMAGE_PIXELS = 4096 * 4096  # anything larger is refused as a possible decompression bomb


def read_image(source: Any, name: str, mode: str | None = None, expected: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image file (path, bytes or file object) to a uint8 array, with errors naming `name`.

    Args:
        source: a path, raw bytes, or a binary file object.
        name: how to call the file in errors (path, archive member).
        mode: PIL mode to convert to (`L` -> (H, W), `RGB` -> (H, W, 3)); None keeps gray as (H, W) and turns
            everything else into RGB.
        expected: (H, W) the image must have, if given.

    Raises:
        DataError: empty, truncated or corrupt data; too many pixels (decompression bomb); wrong size.
    """
    import io as _io

    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise DataError(f"{name}: empty image file")
        source = _io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)) and os.path.getsize(source) == 0:
        raise DataError(f"{name}: empty image file")
    try:
        with Image.open(source) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DataError(f"{name}: {w}x{h} pixels is more than the {MAX_IMAGE_PIXELS} allowed "
                                f"(refused as a possible decompression bomb)")
            if expected is not None and (h, w) != tuple(expected):
                raise DataError(f"{name}: image is {h}x{w}, expected {expected[0]}x{expected[1]}")
            im.load()
            target = mode or ("L" if im.mode in ("L", "1", "I;16", "I", "F") else "RGB")
            if im.mode in ("I;16", "I", "F") and target == "L":
                a = np.asarray(im, dtype=np.float64)  # 16-bit or float gray: 0..65535 scaled to 0..255
                a = a / 257.0 if a.max(initial=0) > 255 else a
                return np.clip(np.rint(a), 0, 255).astype(np.uint8)
            return np.asarray(im.convert(target), dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{name}: cannot decode image ({type(e).__name__}: {e})") from None
    except Image.DecompressionBombError as e:  # pragma: no cover - caught above by the pixel limit first
        raise DataError(f"{name}: refused as a decompression bomb ({e})") from None

"""IMDb reviews (Maas et al. 2011) as LRA's byte-level Text task.

Reads the original `aclImdb/` tree, from a folder or straight from its `.tar.gz` (the shared
`aclImdb_train.tar.gz` by default). Each review is `aclImdb/<split>/{pos,neg}/<id>_<rating>.txt`; line `id` of
`<split>/urls_{pos,neg}.txt` is the IMDb page of the movie it reviews (used by the retrieval stand-in).

Splits: `train` and `val` divide IMDb's train split (a seeded `val_fraction` of it is `val`); `test` is IMDb's
test split when the source has it. (LRA itself validated on the test split; that copy is not shipped here.)
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multiseq.config import AdapterConfig
from multiseq.tasks._archive import iter_files
from multiseq.tasks._common import (
    SHARED_DATA,
    DataError,
    SkipLog,
    TaskDataset,
    check_positive,
    check_split,
    split_indices,
)
from multiseq.tasks.registry import register_task

REVIEW = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/([^/]+)$")
URLS = re.compile(r"(?:^|/)aclImdb/(train|test)/urls_(pos|neg)\.txt$")
NAME = re.compile(r"^(\d+)_(\d+)\.txt$")
MOVIE = re.compile(r"(tt\d+)")


@dataclass
class Reviews:
    """Every review of one IMDb split: parallel lists, sorted by (label, id)."""

    texts: list[str]
    labels: np.ndarray  # 1 = pos, 0 = neg
    ids: np.ndarray
    ratings: np.ndarray
    movies: list[str]  # IMDb title id (`tt...`) or '' when the source has no urls file
    files: list[str]
    skipped: list[str]


def default_source(root: str | os.PathLike | None) -> Path:
    """`root` (a folder holding `aclImdb/`, the `aclImdb` folder itself, or an archive), else the shared copy."""
    if root is None:
        p = SHARED_DATA / "aclImdb_train.tar.gz"
        if not p.exists():
            raise DataError(f"no IMDb data: {p} is absent; pass root= an aclImdb/ folder or its .tar.gz")
        return p
    p = Path(root).expanduser()
    if p.is_dir():
        for cand in (p / "aclImdb", p / "aclImdb_v1.tar.gz", p / "aclImdb_train.tar.gz"):
            if cand.exists():
                return p if cand.name == "aclImdb" else cand
        if p.name == "aclImdb":
            return p.parent
    return p


def load_reviews(source: str | os.PathLike, split: str, on_error: str = "raise") -> Reviews:
    """Read one IMDb split (`train` or `test`) from a folder or archive (cached per process)."""
    source = Path(source)
    if not source.is_file():  # folders are read afresh (their files may change without the folder's mtime)
        return _load.__wrapped__(str(source), split, on_error, 0)
    return _load(str(source), split, on_error, source.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load(source: str, split: str, on_error: str, _mtime: int) -> Reviews:
    log = SkipLog(on_error, f"IMDb {split} in {source}")
    rows, urls = [], {}

    def want(name: str) -> bool:
        m = REVIEW.search(name) or URLS.search(name)
        return bool(m) and m.group(1) == split

    for name, data in iter_files(Path(source), want):
        m = URLS.search(name)
        if m:
            urls[m.group(2)] = data.decode("utf-8", errors="replace").splitlines()
            continue
        m = REVIEW.search(name)
        polarity, fname = m.group(2), m.group(3)
        nm = NAME.match(fname)
        if not nm:
            log.bad(f"{source}:{name}: file name is not <id>_<rating>.txt")
            continue
        rid, rating = int(nm.group(1)), int(nm.group(2))
        if not (1 <= rating <= 4 if polarity == "neg" else 7 <= rating <= 10):
            log.bad(f"{source}:{name}: rating {rating} does not fit label {polarity!r} (neg 1-4, pos 7-10)")
            continue
        if not data.strip():
            log.bad(f"{source}:{name}: empty review")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            log.bad(f"{source}:{name}: not UTF-8 ({e.reason} at byte {e.start})")
            continue
        rows.append((int(polarity == "pos"), rid, rating, text, name))
    if not rows:
        hint = " (the shared copy holds IMDb's train split only: validate on split='val')" if split == "test" else ""
        raise DataError(f"{source}: no IMDb reviews for split {split!r} (expected aclImdb/{split}/pos|neg/*.txt)"
                        f"{hint}")
    rows.sort(key=lambda r: (r[0], r[1]))
    movies = []
    for label, rid, _, _, name in rows:
        lines = urls.get("pos" if label else "neg")
        if lines is None:
            movies.append("")
            continue
        if rid >= len(lines):
            log.bad(f"{source}:{name}: no line {rid + 1} in urls_{'pos' if label else 'neg'}.txt")
            movies.append("")
            continue
        mm = MOVIE.search(lines[rid])
        movies.append(mm.group(1) if mm else lines[rid].strip())
    log.report()
    return Reviews(
        texts=[r[3] for r in rows],
        labels=np.array([r[0] for r in rows], dtype=np.int64),
        ids=np.array([r[1] for r in rows], dtype=np.int64),
        ratings=np.array([r[2] for r in rows], dtype=np.int64),
        movies=movies,
        files=[r[4] for r in rows],
        skipped=log.items,
    )


def split_reviews(
    root, split: str, val_fraction: float, seed: int, on_error: str, size: int | None = None
) -> tuple[Reviews, np.ndarray]:
    """The reviews a split draws from, and the indices into them (seeded order; `size`: class-balanced subset)."""
    r = load_reviews(default_source(root), "test" if split == "test" else "train", on_error)
    return r, split_indices(len(r.texts), split, val_fraction, seed, size, r.labels)


@register_task("imdb", "alias of text")
@register_task("text", "LRA Text: IMDb reviews as bytes (2 classes, 4K)")
class IMDbDataset(TaskDataset):
    """LRA Text: `ds[i] -> (review str, label 0 = negative / 1 = positive)`.

    Args:
        split: `train`, `val` (a seeded `val_fraction` of IMDb train) or `test` (IMDb test, when present).
        root: an `aclImdb/` folder (or its parent) or an archive; default the shared `aclImdb_train.tar.gz`.
        max_length: byte length for the adapter (LRA: 1K, 2K or 4K; default 4,096).
        val_fraction, seed: the validation slice.
        size: keep a seeded, class-balanced subset of `size` items (`tasks.balanced_indices`); the split's order
            is a seeded shuffle either way (the archive lists reviews class by class).
        on_error: `raise` at the first bad file (non-UTF-8, empty, name or rating that does not fit), or `skip`.
    """

    task = "text"
    num_classes = 2
    _label_names = ("negative", "positive")

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        max_length: int = 4096,
        val_fraction: float = 0.1,
        seed: int = 0,
        size: int | None = None,
        on_error: str = "raise",
    ) -> None:
        super().__init__()
        self.split = check_split(split)
        check_positive("max_length", max_length, allow_none=False)
        reviews, idx = split_reviews(root, split, val_fraction, seed, on_error, size)
        self._reviews, self._idx = reviews, idx
        self.labels = reviews.labels[idx]
        self.skipped = list(reviews.skipped)
        self.adapter = AdapterConfig("bytes", max_length=max_length)

    def __getitem__(self, i: int) -> tuple[str, int]:
        i = self._index(i)
        j = self._idx[i]
        return self._reviews.texts[j], int(self.labels[i])

"""LRA Retrieval: two documents in, "related or not" out.

* LRA's AAN files (`new_aan_pairs.{train,eval,test}.tsv`: no header, tab-separated, no quoting, columns
  `label id1 id2 text1 text2`) for users who have them: pass `root=` the folder holding them, or `path=` a file.
* Otherwise a real stand-in built from IMDb: are two reviews about the same movie? Movies come from
  `urls_{pos,neg}.txt`; `train` and `val` use disjoint sets of movies (a seeded `val_fraction` of them); pairs
  are balanced (half same movie, half different), seeded.

LRA encodes each document's first 10,000 bytes, then cuts it to 4,000: the adapter's `max_length=4000` does both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from multiseq.config import AdapterConfig
from multiseq.errors import ConfigError
from multiseq.tasks._common import DataError, SkipLog, TaskDataset, check_positive, check_split, seeded_permutation
from multiseq.tasks.registry import register_task
from multiseq.tasks.subset import balanced_indices
from multiseq.tasks.text import default_source, load_reviews

AAN_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}
AAN_DOC_BYTES = 10_000


def read_aan(path: str | os.PathLike, on_error: str = "raise") -> tuple[list[tuple[str, str]], list[int], list[str]]:
    """Read an LRA AAN TSV. Returns (pairs, labels, skipped). Rows with fewer than 5 columns or a label that is
    not 0/1 raise `DataError` naming the file and line, or are skipped and reported under `on_error='skip'`."""
    path = Path(path)
    log = SkipLog(on_error, f"AAN file {path}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"AAN file not found: {path}") from None
    if not raw.strip():
        raise DataError(f"{path}: empty file (expected rows 'label\\tid1\\tid2\\ttext1\\ttext2')")
    pairs, labels = [], []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        cols = line.rstrip(b"\r").split(b"\t")
        if len(cols) < 5:
            log.bad(f"{path}:{lineno}: expected 5 tab-separated columns (label id1 id2 text1 text2), got {len(cols)}")
            continue
        try:
            label = float(cols[0])
        except ValueError:
            log.bad(f"{path}:{lineno}: label {cols[0][:20]!r} is not a number")
            continue
        if label not in (0.0, 1.0):
            log.bad(f"{path}:{lineno}: label {label} is not 0 or 1")
            continue
        # texts may hold tabs? LRA's reader splits on every tab with 5 fields; extra tabs join the second text
        t1, t2 = cols[3], b"\t".join(cols[4:])
        docs = []
        for t in (t1, t2):
            try:
                docs.append(t[:AAN_DOC_BYTES].decode("utf-8", errors="strict"))
            except UnicodeDecodeError:
                # cutting at 10,000 bytes may split a character; decode the whole field then re-cut
                try:
                    docs.append(t.decode("utf-8").encode("utf-8")[:AAN_DOC_BYTES].decode("utf-8", errors="ignore"))
                except UnicodeDecodeError as e:
                    log.bad(f"{path}:{lineno}: text is not UTF-8 ({e.reason} at byte {e.start})")
                    docs = []
                    break
        if len(docs) != 2:
            continue
        pairs.append((docs[0], docs[1]))
        labels.append(int(label))
    log.report()
    if not pairs:
        raise DataError(f"{path}: no usable rows")
    return pairs, labels, log.items


def imdb_pairs(
    movies: list[str], n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced pairs over items with `movies` labels: (i, j, label) arrays, label 1 = same movie.

    Positives pick a movie with at least two items (weighted by its count of pairs) and two distinct items of
    it; negatives pick two items of different movies uniformly.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xAA7]))
    groups: dict[str, list[int]] = {}
    for k, m in enumerate(movies):
        groups.setdefault(m, []).append(k)
    multi = [np.array(g) for g in groups.values() if len(g) >= 2]
    if not multi or len(groups) < 2:
        raise DataError("too few movies with two or more reviews to build same-movie pairs")
    w = np.array([len(g) * (len(g) - 1) for g in multi], dtype=np.float64)
    labels = np.zeros(n, dtype=np.int64)
    labels[: (n + 1) // 2] = 1
    labels = labels[rng.permutation(n)]
    mv = np.array(movies)
    I, J = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for k in range(n):
        if labels[k]:
            g = multi[rng.choice(len(multi), p=w / w.sum())]
            a, b = rng.choice(len(g), size=2, replace=False)
            I[k], J[k] = g[a], g[b]
        else:
            while True:
                a, b = rng.integers(len(movies), size=2)
                if mv[a] != mv[b]:
                    break
            I[k], J[k] = a, b
    return I, J, labels


@register_task("retrieval", "LRA Retrieval: AAN TSVs, or IMDb same-movie review pairs (2 classes, 2 x 4,000 bytes)")
class RetrievalDataset(TaskDataset):
    """Two-document matching: `ds[i] -> ((doc1, doc2), label)`, label 1 = related.

    Args:
        split: `train`, `val` or `test`.
        root: a folder holding LRA's `new_aan_pairs.*.tsv` (read as AAN), else an IMDb source as for `text`
            (default: the shared `aclImdb_train.tar.gz`).
        path: one AAN TSV file to read.
        source: `auto` (AAN files when `root` holds them, else IMDb), `aan` or `imdb`.
        size: number of pairs (IMDb: default one pair per review of the split's movies; AAN: a seeded
            class-balanced subset of the rows).
        max_length: bytes per document for the adapter (LRA: 4,000).
        val_fraction, seed: IMDb stand-in: share of movies held out for `val`, and the pair sampling seed.
        on_error: `raise` or `skip` for bad rows or files.
    """

    task = "retrieval"
    num_classes = 2
    pair = True
    _label_names = ("unrelated", "related")

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        path: str | os.PathLike | None = None,
        source: str = "auto",
        size: int | None = None,
        max_length: int = 4000,
        val_fraction: float = 0.1,
        seed: int = 0,
        on_error: str = "raise",
    ) -> None:
        super().__init__()
        self.split = check_split(split)
        check_positive("size", size)
        check_positive("max_length", max_length, allow_none=False)
        if source not in ("auto", "aan", "imdb"):
            raise ConfigError(f"source must be 'auto', 'aan' or 'imdb', got {source!r}")
        aan = Path(path) if path is not None else None
        if aan is None and root is not None and source != "imdb":
            cand = Path(root).expanduser() / AAN_FILES[split]
            if cand.exists() or source == "aan":
                aan = cand
        if aan is None and source == "aan":
            raise ConfigError("source='aan' needs root= (a folder of new_aan_pairs.*.tsv) or path=")
        if aan is not None:
            pairs, labels, self.skipped = read_aan(aan, on_error)
            labels = np.asarray(labels, dtype=np.int64)
            keep = balanced_indices(labels, size, seed) if size else np.arange(len(pairs))
            self._pairs = [pairs[k] for k in keep]
            self.labels = labels[keep]
            self.source = "aan"
        else:
            self._build_imdb(root, split, size, val_fraction, seed, on_error)
        self.adapter = AdapterConfig("bytes", max_length=max_length)

    def _build_imdb(self, root, split, size, val_fraction, seed, on_error) -> None:
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        src = default_source(root)
        reviews = load_reviews(src, "test" if split == "test" else "train", on_error)
        if not any(reviews.movies):
            raise DataError(f"{src}: no urls_pos.txt / urls_neg.txt, so reviews cannot be grouped by movie")
        keep = np.array([k for k, m in enumerate(reviews.movies) if m])
        if split != "test":
            # hold out whole movies: train and val share none
            names = sorted({reviews.movies[k] for k in keep})
            perm = seeded_permutation(len(names), seed)
            held = {names[p] for p in perm[: max(1, int(round(len(names) * val_fraction)))]}
            keep = np.array([k for k in keep if (reviews.movies[k] in held) == (split == "val")])
        movies = [reviews.movies[k] for k in keep]
        n = size or len(keep)
        split_salt = {"train": 0, "val": 1, "test": 2}[split]
        I, J, labels = imdb_pairs(movies, n, seed * 3 + split_salt)
        self._reviews, self._I, self._J = reviews, keep[I], keep[J]
        self.labels = labels
        self.movies = sorted(set(movies))
        self.skipped = list(reviews.skipped)
        self.source = "imdb"

    def __getitem__(self, i: int) -> tuple[tuple[str, str], int]:
        i = self._index(i)
        if self.source == "aan":
            return self._pairs[i], int(self.labels[i])
        t = self._reviews.texts
        return (t[self._I[i]], t[self._J[i]]), int(self.labels[i])

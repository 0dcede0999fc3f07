"""Pathfinder and Path-X datasets: generated on first use in LRA's on-disk layout, or read from a user's copy.

Layout (as the original generator and LRA's release):

    <root>/pathfinder<res>/<difficulty>/imgs/<batch>/sample_<n>.png
    <root>/pathfinder<res>/<difficulty>/metadata/<batch>.npy    # plain text, one line per image:
        imgs/<batch> sample_<n>.png <index> <label> <continuity> <contour_length> <distractor_length>
        <paddle_length> <paddle_thickness> <margin> <number of paddle contrasts>

with difficulty `curv_baseline` (contour length 6), `curv_contour_length_9` or `curv_contour_length_14`.
LRA splits each difficulty 80 / 10 / 10 % in order into train / val / test; Pathfinder is 32 px at contour
length 14, Path-X 128 px at 14. Generated image `index` has its own seed, so any subset (`size=`) is generated
alone, and a smaller set is always the start of a larger one.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from PIL import Image

from multiseq._io import atomic_write_bytes, atomic_write_text
from multiseq.config import AdapterConfig
from multiseq.errors import ConfigError
from multiseq.tasks._common import (
    DataError,
    SkipLog,
    TaskDataset,
    cache_root,
    check_positive,
    check_split,
    file_lock,
    read_image,
)
from multiseq.tasks.pathfinder_gen import CONTOUR_LENGTHS, PathfinderSpec, render, spec_for
from multiseq.tasks.registry import register_task

BATCH = 1000  # images per imgs/<batch> folder
LRA_TOTAL = 200_000
FOLDERS = {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}


def split_range(split: str, total: int) -> tuple[int, int]:
    """LRA's [:80%] / [80%:90%] / [90%:] division of `total` images: (start, stop) indices."""
    a, b = int(total * 0.8), int(total * 0.9)
    return {"train": (0, a), "val": (a, b), "test": (b, total)}[check_split(split)]


def image_seed(seed: int, resolution: int, contour_length: int, index: int) -> np.random.SeedSequence:
    """The seed of one image: any image can be regenerated alone."""
    return np.random.SeedSequence([seed, resolution, contour_length, index])


def folder(root: str | os.PathLike | None, resolution: int, contour_length: int = 14, seed: int = 0) -> Path:
    name = f"pathfinder{resolution}" + (f"_seed{seed}" if seed else "")
    return cache_root(root) / name / FOLDERS[contour_length]


def _meta_line(spec: PathfinderSpec, index: int, label: int, margin: int) -> str:
    b, n = divmod(index, BATCH)
    fields = [f"imgs/{b}", f"sample_{n}.png", index, label, spec.continuity, spec.contour_length,
              spec.distractor_length, spec.paddle_length, spec.paddle_thickness, margin,
              len(spec.paddle_contrast_list)]
    return " ".join(str(f) for f in fields)


def _png_bytes(img: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _make(job: tuple[PathfinderSpec, int, int, list[int], str]) -> list[tuple[int, str]]:
    """Worker: render and save images `indices`; returns (index, metadata line) for each."""
    spec, seed, res, indices, out = job
    rows = []
    for i in indices:
        img, label, info = render(spec, image_seed(seed, res, spec.contour_length, i), with_info=True)
        b, n = divmod(i, BATCH)
        atomic_write_bytes(Path(out) / "imgs" / str(b) / f"sample_{n}.png", _png_bytes(img))
        rows.append((i, _meta_line(spec, i, label, info["margin"])))
    return rows


def read_metadata(base: Path, on_error: str = "raise") -> tuple[list[tuple[Path, int, int]], list[str]]:
    """All metadata lines under `base/metadata/`, in batch then line order: (image path, label, index field)."""
    meta = base / "metadata"
    if not meta.is_dir():
        raise DataError(f"no metadata folder at {meta} (expected LRA's Pathfinder layout: imgs/ and metadata/)")
    log = SkipLog(on_error, f"Pathfinder metadata in {meta}")
    files = sorted(meta.glob("*.npy"), key=lambda p: (int(p.stem) if p.stem.isdigit() else 1 << 62, p.stem))
    if not files:
        raise DataError(f"{meta}: no metadata files (*.npy, one text line per image)")
    rows = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            log.bad(f"{f}: not a text metadata file (LRA writes plain text lines despite the .npy name)")
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) < 4:
                log.bad(f"{f}:{lineno}: expected at least 4 fields (subdir, file, index, label), got {len(cols)}")
                continue
            if cols[3] not in ("0", "1"):
                log.bad(f"{f}:{lineno}: label {cols[3]!r} is not 0 or 1")
                continue
            index = int(cols[2]) if cols[2].isdigit() else len(rows)
            rows.append((base / cols[0] / cols[1], int(cols[3]), index))
    log.report()
    return rows, log.items


def ensure_images(
    resolution: int,
    indices: range,
    root: str | os.PathLike | None = None,
    contour_length: int = 14,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Generate the images `indices` of one (resolution, difficulty, seed) set that are not on disk yet."""
    spec = spec_for(resolution, contour_length)
    base = folder(root, resolution, contour_length, seed)
    with file_lock(base / ".lock"):
        have = {}
        if (base / "metadata").is_dir():
            have = {idx: None for _, _, idx in read_metadata(base)[0]}
        missing = [i for i in indices if i not in have]
        if not missing:
            return base
        workers = max(1, min(workers or os.cpu_count() or 1, len(missing)))
        per = max(1, min(64, len(missing) // (workers * 4) or 1))
        jobs = [(spec, seed, resolution, missing[k : k + per], str(base)) for k in range(0, len(missing), per)]
        rows: list[tuple[int, str]] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(missing), desc=f"pathfinder{resolution}", unit="img")
        try:
            if workers == 1:
                for job in jobs:
                    rows += _make(job)
                    if bar is not None:
                        bar.update(len(job[3]))
            else:
                with ProcessPoolExecutor(workers) as pool:
                    futures = {pool.submit(_make, job): len(job[3]) for job in jobs}
                    for fut in as_completed(futures):
                        rows += fut.result()
                        if bar is not None:
                            bar.update(futures[fut])
        finally:
            if bar is not None:
                bar.close()
        _merge_metadata(base, rows)
    return base


def _merge_metadata(base: Path, rows: list[tuple[int, str]]) -> None:
    by_batch: dict[int, dict[int, str]] = {}
    for i, line in rows:
        by_batch.setdefault(i // BATCH, {})[i] = line
    for b, new in by_batch.items():
        path = base / "metadata" / f"{b}.npy"
        old = {}
        if path.exists():
            for line in path.read_text().splitlines():
                cols = line.split()
                if len(cols) >= 3 and cols[2].isdigit():
                    old[int(cols[2])] = line
        old.update(new)
        atomic_write_text(path, "".join(old[i] + "\n" for i in sorted(old)))


@register_task("pathx", "LRA Path-X: 128 px snakes, contour length 14", generated=True, resolution=128, task="pathx")
@register_task("pathfinder", "LRA Pathfinder: 32 px snakes, contour length 14", generated=True, resolution=32,
               task="pathfinder")
class PathfinderDataset(TaskDataset):
    """Pathfinder / Path-X: `ds[i] -> (image uint8 (H, W), label 0/1)`.

    Args:
        split: `train`, `val` or `test` (LRA's 80 / 10 / 10 % of `total`).
        root: cache directory for generated images.
        resolution: 32 (Pathfinder), 64, 128 (Path-X) or 256.
        contour_length: difficulty, 6, 9 or 14 (LRA uses 14).
        size: images in this split (default: all of it, e.g. 160,000 for train); generated when missing.
        seed: generator seed (0 is the default set).
        total: images per difficulty the split percentages apply to (LRA: 200,000).
        path: a difficulty folder of an existing release (e.g. `.../pathfinder32/curv_contour_length_14`);
            read as is, empty images dropped and reported.
        workers, progress: generation processes (default all cores) and a progress bar.
        on_error: `raise` or `skip` for bad metadata lines and unreadable images (checked at construction
            when `skip`, else when an item is read).
    """

    num_classes = 2
    _label_names = ("disconnected", "connected")

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        resolution: int = 32,
        contour_length: int = 14,
        size: int | None = None,
        seed: int = 0,
        total: int = LRA_TOTAL,
        path: str | os.PathLike | None = None,
        workers: int | None = None,
        progress: bool = False,
        on_error: str = "raise",
        task: str | None = None,
    ) -> None:
        super().__init__()
        self.split = check_split(split)
        check_positive("size", size)
        check_positive("total", total, allow_none=False)
        if contour_length not in CONTOUR_LENGTHS:
            raise ConfigError(f"contour_length must be one of {CONTOUR_LENGTHS}, got {contour_length!r}")
        try:
            spec_for(resolution, contour_length)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.task = task or f"pathfinder{resolution}"
        self.resolution = resolution
        log = SkipLog(on_error, f"Pathfinder {self.split}")
        if path is None:
            start, stop = split_range(split, total)
            n = stop - start if size is None else size
            if n > stop - start:
                raise ConfigError(f"size={size} is more than the {stop - start} images of split {split!r} "
                                  f"(total={total}); raise total")
            base = ensure_images(resolution, range(start, start + n), root, contour_length, seed, workers, progress)
            rows, bad = read_metadata(base, on_error)
            index = {idx: (p, lab) for p, lab, idx in rows}
            items = [index[i] for i in range(start, start + n)]
        else:
            base = Path(path)
            rows, bad = read_metadata(base, on_error)
            kept, empty = [], []
            for p, lab, _ in rows:
                if p.exists() and p.stat().st_size == 0:  # LRA drops empty images whatever the policy
                    empty.append(f"{p}: empty image file")
                    continue
                kept.append((p, lab))
            if empty:
                warnings.warn(f"Pathfinder {base}: skipped {len(empty)} bad item(s) (empty images, dropped as LRA "
                              f"does): {'; '.join(empty[:5])}", stacklevel=2)
                bad = list(bad) + empty
            start, stop = split_range(split, len(kept))
            items = kept[start:stop][:size]
        self.skipped = list(bad)
        if on_error == "skip":
            good = []
            for p, lab in items:
                try:
                    read_image(p, str(p), mode="L", expected=(resolution, resolution))
                except DataError as e:
                    log.bad(str(e))
                    continue
                good.append((p, lab))
            items = good
        log.report()
        self.skipped += log.items
        self.base = base
        self.paths = [p for p, _ in items]
        self.labels = np.asarray([lab for _, lab in items], dtype=np.int64)
        self.adapter = AdapterConfig("pixels", max_length=resolution * resolution,
                                     options={"image_size": [resolution, resolution]})

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        i = self._index(i)
        p = self.paths[i]
        img = read_image(p, str(p), mode="L", expected=(self.resolution, self.resolution))
        return img, int(self.labels[i])


for _res in (32, 64, 128, 256):
    register_task(f"pathfinder{_res}", f"Pathfinder at {_res} px (any difficulty)", generated=True, resolution=_res,
                  task=f"pathfinder{_res}")(PathfinderDataset)

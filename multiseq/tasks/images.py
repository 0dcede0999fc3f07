"""Image classification data: LRA Image (grayscale CIFAR-10, 1,024 tokens) and other image sets.

Sources, detected from what `root` / `path` points at:

* a class-folder tree of JPEG / PNG files, as a folder or a `.tar(.gz)` archive: `[...]/<split>/<class>/<file>`
  when split folders (`train`, `test`) exist, else `<class>/<file>` (the shared `cifar10_jpeg_train.tar.gz` is
  the default source of `image`);
* torchvision's CIFAR-10 (`cifar-10-batches-py/`), read with a restricted unpickler (arrays and lists only);
* IDX files (MNIST, Fashion-MNIST: `train-images-idx3-ubyte[.gz]` with its `-labels-idx1-` file).

`ds[i]` is an uint8 array `(H, W, 3)` (or `(H, W)` for gray sources, uint16 `(H, W)` for 16-bit files). Files
are decoded by `multiseq.adapters.images.decode_image`, the decoder `ImageClassifier` and the adapters use, so a
file reads the same through a task and through a classifier (alpha composited onto white, 16-bit kept 16-bit and
scaled by its dtype). `view` picks the adapter: `gray` (LRA:
0.2989 R + 0.587 G + 0.114 B, 1,024 tokens), `rgb` (pixel features) or `patches` (ViT).
`train` / `val` divide the source's train split (a seeded `val_fraction`, LRA: 10 %); `test` is its test split.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import pickle
import re
from pathlib import Path

import numpy as np

from multiseq.adapters.images import decode_image
from multiseq.config import AdapterConfig
from multiseq.errors import ConfigError, InputError
from multiseq.tasks import _common
from multiseq.tasks._archive import is_archive, iter_files
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

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
VIEWS = ("gray", "rgb", "patches")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _Source:
    """All images of one split: encoded files (decoded on access) or a decoded array."""

    def __init__(self, labels, classes, files=None, blobs=None, array=None, name=""):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.files, self.blobs, self.array, self.name = files, blobs, array, name

    def image(self, k: int) -> np.ndarray:
        if self.array is not None:
            return self.array[k]
        return decode_file(self.blobs[k], f"{self.name}:{self.files[k]}")


def decode_file(blob: bytes, name: str) -> np.ndarray:
    """Encoded image bytes -> `decode_image`'s array; errors are `DataError`s naming `name`.

    Raises:
        DataError: empty, truncated or corrupt data; more than `MAX_IMAGE_PIXELS` pixels (decompression bomb);
            values a decoder refuses (e.g. a 32-bit image outside [0, 65535]).
    """
    from PIL import Image, UnidentifiedImageError

    if not blob:
        raise DataError(f"{name}: empty image file")
    try:
        with Image.open(io.BytesIO(blob)) as im:
            w, h = im.size
            if w * h > _common.MAX_IMAGE_PIXELS:
                raise DataError(f"{name}: {w}x{h} pixels is more than the {_common.MAX_IMAGE_PIXELS} allowed "
                                f"(refused as a possible decompression bomb)")
            im.load()
            return decode_image(im)
    except DataError:
        raise
    except InputError as e:
        raise DataError(f"{name}: {e}") from None
    except Image.DecompressionBombError as e:
        raise DataError(f"{name}: refused as a decompression bomb ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{name}: cannot decode image ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------------------------------------------
# class-folder trees


@functools.lru_cache(maxsize=2)
def _tree_entries(source: str, _mtime: int) -> tuple[list[tuple[str, str, str, bytes]], list[str]]:
    """Every image file of a tree: (split folder or '', class, relative path, bytes), and files outside classes."""
    entries, loose = [], []
    for rel, data in iter_files(Path(source), lambda n: n.lower().endswith(EXTENSIONS)):
        parts = rel.split("/")
        if len(parts) < 2:
            loose.append(rel)
            continue
        sp = parts[-3] if len(parts) >= 3 and parts[-3] in ("train", "test", "val", "valid") else ""
        entries.append((sp, parts[-2], rel, data))
    return entries, loose


def _tree(source: Path, split: str, on_error: str) -> _Source:
    log = SkipLog(on_error, f"images in {source}")
    if source.is_file():  # archives are cached per process; folders are read afresh
        entries, loose = _tree_entries(str(source), source.stat().st_mtime_ns)
    else:
        entries, loose = _tree_entries.__wrapped__(str(source), 0)
    for rel in loose:
        log.bad(f"{source}:{rel}: image outside any class folder")
    if not entries:
        raise DataError(f"{source}: no images ({', '.join(EXTENSIONS)}) in class folders")
    has_splits = any(e[0] for e in entries)
    want = {"train": ("train",), "val": ("train",), "test": ("test",)}[split] if has_splits else ("",)
    if split == "test" and not has_splits:
        raise DataError(f"{source}: no test/ folder, so there is no test split (use split='val')")
    chosen = [e for e in entries if e[0] in want]
    if not chosen:
        raise DataError(f"{source}: no images under a {want[0]}/ folder"
                        + (" (this copy ships the train split only: use split='val')" if split == "test" else ""))
    # one class list for every split of the source, so labels agree across splits
    classes = sorted({e[1] for e in entries})
    chosen.sort(key=lambda e: (e[1], e[2]))
    log.report()
    return _Source(
        labels=[classes.index(e[1]) for e in chosen],
        classes=classes,
        files=[e[2] for e in chosen],
        blobs=[e[3] for e in chosen],
        name=str(source),
    )


# ---------------------------------------------------------------------------------------------------------------
# torchvision CIFAR-10 pickles


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches only: dicts, lists, bytes, numpy arrays; any other class is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")


def _cifar_pickles(folder: Path, split: str) -> _Source:
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    arrays, labels = [], []
    for n in names:
        p = folder / n
        try:
            with open(p, "rb") as fh:
                d = _SafeUnpickler(fh, encoding="bytes").load()
            data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            lab = list(d[b"labels"])
        except FileNotFoundError:
            raise DataError(f"CIFAR-10 batch not found: {p}") from None
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
            raise DataError(f"{p}: not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
        if len(lab) != len(data) or any(not 0 <= v < 10 for v in lab):
            raise DataError(f"{p}: {len(lab)} labels for {len(data)} images, or a label outside 0..9")
        arrays.append(data)
        labels += lab
    return _Source(labels, CIFAR10_CLASSES, array=np.ascontiguousarray(np.concatenate(arrays)), name=str(folder))


# ---------------------------------------------------------------------------------------------------------------
# IDX (MNIST family)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed): unsigned-byte data with 1 to 4 dimensions."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot decompress ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: IDX type 0x{raw[2]:02x} not supported (only unsigned bytes, 0x08)")
    ndim = raw[3]
    if not 1 <= ndim <= 4 or len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: bad IDX header ({ndim} dimensions)")
    dims = [int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    n = int(np.prod(dims))
    body = raw[4 + 4 * ndim :]
    if len(body) != n:
        raise DataError(f"{path}: header says {dims} = {n} bytes, file has {len(body)} (truncated?)")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _idx_pair(folder: Path, split: str) -> _Source:
    prefix = "t10k" if split == "test" else "train"

    def find(kind: str) -> Path:
        for suffix in ("", ".gz"):
            for sep in ("-", "."):
                p = folder / f"{prefix}-{kind}{sep}idx{1 if kind == 'labels' else 3}-ubyte{suffix}"
                if p.exists():
                    return p
        raise DataError(f"{folder}: no {prefix}-{kind}-idx*-ubyte[.gz] file")

    images, labels = read_idx(find("images")), read_idx(find("labels"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: IDX images {images.shape} and labels {labels.shape} do not match")
    classes = [str(c) for c in range(int(labels.max()) + 1)]
    return _Source(labels, classes, array=images, name=str(folder))


def load_source(source: Path, split: str, on_error: str = "raise") -> _Source:
    """Detect the kind of `source` and read one split (`val` reads the train split)."""
    if source.is_dir():
        if (source / "cifar-10-batches-py").is_dir():
            return _cifar_pickles(source / "cifar-10-batches-py", split)
        if (source / "data_batch_1").exists() or (source / "test_batch").exists():
            return _cifar_pickles(source, split)
        if any(re.match(r"(train|t10k)-images", p.name) for p in source.iterdir()):
            return _idx_pair(source, split)
        return _tree(source, split, on_error)
    if is_archive(source):
        return _tree(source, split, on_error)
    raise DataError(f"{source}: not an image folder, an archive, CIFAR-10 batches or IDX files")


_CIFAR = "cifar10_jpeg_train.tar.gz"


@register_task("fashion_mnist", "Fashion-MNIST from IDX files (Debian dataset-fashion-mnist)", task="fashion_mnist",
               default="/usr/share/datasets/fashion-mnist")
@register_task("cifar10", "CIFAR-10 as the image task, under its own name (view gray / rgb / patches)", task="cifar10",
               default=_CIFAR)
@register_task("image", "LRA Image: CIFAR-10 as 1,024 grayscale tokens (10 classes)", task="image", default=_CIFAR)
class ImageDataset(TaskDataset):
    """Image classification: `ds[i] -> (image uint8 (H, W, 3) or (H, W), or uint16 (H, W) for 16-bit files, label)`.

    Args:
        split: `train`, `val` (a seeded `val_fraction` of the train split) or `test`.
        root: the data (see the module docstring); default the shared `cifar10_jpeg_train.tar.gz`.
        view: `gray` (LRA: grayscale tokens), `rgb` (pixel features) or `patches` (ViT patches).
        patch_size: side of a patch for `view='patches'`.
        val_fraction, seed: the validation slice (LRA: 10 %).
        size: keep a seeded, class-balanced subset of `size` items (`tasks.balanced_indices`); the split's order
            is a seeded shuffle either way (class folders list images class by class).
        on_error: `raise` (an unreadable image raises `DataError` naming it when read) or `skip` (every image is
            decoded at construction; bad ones are counted and reported).
    """

    task = "image"

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        view: str = "gray",
        patch_size: int = 4,
        val_fraction: float = 0.1,
        seed: int = 0,
        size: int | None = None,
        on_error: str = "raise",
        task: str = "image",
        default: str = "cifar10_jpeg_train.tar.gz",
    ) -> None:
        super().__init__()
        self.split, self.task = check_split(split), task
        check_positive("size", size)
        check_positive("patch_size", patch_size, allow_none=False)
        if view not in VIEWS:
            raise ConfigError(f"view must be one of {VIEWS}, got {view!r}")
        if root is None:
            path = SHARED_DATA / default if not os.path.isabs(default) else Path(default)
            if not path.exists():
                raise DataError(f"no image data: {path} is absent; pass root= (a class-folder tree or archive, "
                                f"cifar-10-batches-py/, or IDX files)")
        else:
            path = Path(root).expanduser()
        src = load_source(path, split, on_error)
        idx = split_indices(len(src.labels), split, val_fraction, seed, size, src.labels)
        log = SkipLog(on_error, f"images in {path}")
        if on_error == "skip" and src.array is None:
            good = []
            for k in idx:
                try:
                    src.image(int(k))
                except DataError as e:
                    log.bad(str(e))
                    continue
                good.append(k)
            idx = np.asarray(good, dtype=np.int64)
        log.report()
        self.skipped = log.items
        self._src, self._idx = src, idx
        self.labels = src.labels[idx]
        self.classes = src.classes
        self._label_names = tuple(src.classes)
        self.num_classes = len(src.classes)
        shape = src.image(int(idx[0])).shape if len(idx) else (32, 32, 3)
        self.image_size = (int(shape[0]), int(shape[1]))
        self.adapter = _adapter(view, self.image_size, patch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        i = self._index(i)
        img = self._src.image(int(self._idx[i]))
        if img.shape[:2] != self.image_size:
            raise DataError(f"{self._src.name}: image {self._idx[i]} is {img.shape[0]}x{img.shape[1]}, the set's "
                            f"images are {self.image_size[0]}x{self.image_size[1]}")
        return img, int(self.labels[i])


def _adapter(view: str, size: tuple[int, int], patch: int) -> AdapterConfig:
    H, W = size
    if view == "gray":
        return AdapterConfig("pixels", max_length=H * W, options={"image_size": [H, W]})
    if view == "rgb":
        return AdapterConfig("pixels", max_length=H * W,
                             options={"image_size": [H, W], "color": "rgb", "as_tokens": False})
    n = -(-H // patch) * -(-W // patch)
    return AdapterConfig("patches", max_length=n, options={"image_size": [H, W], "patch_size": patch})

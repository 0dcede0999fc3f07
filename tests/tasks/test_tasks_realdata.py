"""Real-data loaders (IMDb text, retrieval pairs, images) on the small fixtures cut from the shared archives."""

from __future__ import annotations

import gzip
import io
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import multiseq.tasks as tasks
from multiseq.adapters import build_adapter
from multiseq.tasks import _common
from multiseq.tasks._common import SHARED_DATA, DataError
from multiseq.tasks.images import CIFAR10_CLASSES

FIX = Path(__file__).parent.parent / "fixtures"
IMDB = FIX / "aclImdb_mini.tar.gz"
CIFAR = FIX / "cifar10_mini.tar.gz"
needs_shared = pytest.mark.skipif(
    not (SHARED_DATA / "aclImdb_train.tar.gz").exists(), reason=f"shared data absent at {SHARED_DATA}"
)


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


@pytest.fixture(scope="module")
def imdb_files():
    return _members(IMDB)


@pytest.fixture(scope="module")
def imdb_tree(tmp_path_factory):
    d = tmp_path_factory.mktemp("imdb")
    with tarfile.open(IMDB) as tar:
        tar.extractall(d, filter="data")
    return d


# ------------------------------------------------------------------------------------------------ text


def test_text_splits_labels_and_contract(imdb_files):
    polarity = {v.decode(): int("/pos/" in k) for k, v in imdb_files.items() if k.endswith(".txt") and "urls" not in k}
    tr, va = tasks.get("text", root=IMDB), tasks.get("text", split="val", root=IMDB)
    assert (len(tr), len(va)) == (270, 30) and (tr.task, tr.num_classes, tr.pair) == ("text", 2, False)
    assert tr.adapter.kind == "bytes" and tr.adapter.max_length == 4096
    assert tr.label_names == ["negative", "positive"]
    texts_tr = {tr[i][0] for i in range(len(tr))}
    texts_va = {va[i][0] for i in range(len(va))}
    assert not texts_tr & texts_va and len(texts_tr | texts_va) == 300
    for ds in (tr, va):
        for i in range(len(ds)):
            text, label = ds[i]
            assert isinstance(text, str) and label == polarity[text] == ds.labels[i]
    other = tasks.get("text", split="val", root=IMDB, seed=1)
    assert {other[i][0] for i in range(30)} != texts_va  # the slice is seeded
    assert [va[i] for i in range(30)] == [tasks.get("text", split="val", root=IMDB)[i] for i in range(30)]


def test_text_folder_and_archive_agree_and_bytes_are_lra_ids(imdb_tree):
    a, b = tasks.get("text", root=IMDB, size=20), tasks.get("text", root=imdb_tree, size=20)
    assert [a[i] for i in range(20)] == [b[i] for i in range(20)]
    text, _ = a[0]
    x, mask = build_adapter(a.adapter)([text])
    raw = text.encode("utf-8")[:4096]
    assert x[0, : len(raw)].tolist() == [c + 1 for c in raw] and int(mask.sum()) == len(raw)


def _copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_text_bad_files_raise_with_the_name_or_are_counted(imdb_tree, tmp_path):
    root = _copy_tree(imdb_tree, tmp_path / "t")
    neg = root / "aclImdb" / "train" / "neg"
    (neg / "9000_2.txt").write_bytes(b"caf\xe9 au lait")  # Latin-1, not UTF-8
    with pytest.raises(DataError, match=r"9000_2.txt: not UTF-8"):
        tasks.get("text", root=root)
    with pytest.warns(UserWarning, match="skipped 1 bad item"):
        n = sum(len(tasks.get("text", split=s, root=root, on_error="skip")) for s in ("train", "val"))
    assert n == 300
    (neg / "9000_2.txt").unlink()
    (neg / "9001_8.txt").write_text("rated 8 in the neg folder")
    with pytest.raises(DataError, match="rating 8 does not fit"):
        tasks.get("text", root=root)
    (neg / "9001_8.txt").unlink()
    (neg / "9002_1.txt").write_text("   ")
    with pytest.raises(DataError, match="9002_1.txt: empty review"):
        tasks.get("text", root=root)
    (neg / "9002_1.txt").unlink()
    (neg / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not <id>_<rating>"):
        tasks.get("text", root=root)


def test_text_test_split_only_when_present(imdb_tree, tmp_path):
    with pytest.raises(DataError, match="split='val'"):
        tasks.get("text", split="test", root=IMDB)
    root = _copy_tree(imdb_tree, tmp_path / "t")
    (root / "aclImdb" / "test" / "pos").mkdir(parents=True)
    (root / "aclImdb" / "test" / "pos" / "0_9.txt").write_text("A test review.")
    ds = tasks.get("text", split="test", root=root)
    assert len(ds) == 1 and ds[0] == ("A test review.", 1)


def test_corrupt_archive_is_named(tmp_path):
    bad = tmp_path / "aclImdb_train.tar.gz"
    bad.write_bytes(IMDB.read_bytes()[:5000])  # truncated
    with pytest.raises(DataError, match="aclImdb_train.tar.gz"):
        tasks.get("text", root=bad)


@needs_shared
def test_text_full_shared_archive():
    tr, va = tasks.get("text"), tasks.get("text", split="val")
    assert (len(tr), len(va)) == (22_500, 2_500)
    assert 0.45 < tr.labels.mean() < 0.55


# ------------------------------------------------------------------------------------------------ retrieval


def test_retrieval_imdb_pairs_same_movie_balanced_disjoint(imdb_files):
    urls = {pol: imdb_files[f"aclImdb/train/urls_{pol}.txt"].decode().splitlines() for pol in ("pos", "neg")}
    movie_of = {}
    for k, v in imdb_files.items():
        m = re.search(r"/(pos|neg)/(\d+)_\d+\.txt$", k)
        if m:
            movie_of[v.decode()] = re.search(r"tt\d+", urls[m.group(1)][int(m.group(2))]).group(0)
    tr = tasks.get("retrieval", root=IMDB, size=200)
    va = tasks.get("retrieval", split="val", root=IMDB, size=40)
    assert tr.pair and tr.num_classes == 2 and tr.adapter.kind == "bytes" and tr.adapter.max_length == 4000
    assert tr.labels.sum() == 100 and va.labels.sum() == 20  # balanced
    seen = {"train": set(), "val": set()}
    for name, ds in (("train", tr), ("val", va)):
        for i in range(len(ds)):
            (a, b), label = ds[i]
            assert a != b
            assert label == int(movie_of[a] == movie_of[b])
            seen[name] |= {movie_of[a], movie_of[b]}
    assert not seen["train"] & seen["val"]  # movies disjoint between train and val


AAN_ROWS = [
    "1\tid1\tid2\tFirst paper text.\tSecond paper text.",
    "0.0\tid3\tid4\tThird.\tFourth.",
]


def test_retrieval_reads_lra_aan_tsv(tmp_path):
    long = "x" * 12_000
    (tmp_path / "new_aan_pairs.train.tsv").write_text("\n".join(AAN_ROWS + [f"1\ta\tb\t{long}\tshort"]) + "\n")
    ds = tasks.get("retrieval", root=tmp_path)
    assert ds.source == "aan" and len(ds) == 3 and ds.labels.tolist() == [1, 0, 1]
    assert ds[0] == (("First paper text.", "Second paper text."), 1)
    assert len(ds[2][0][0]) == 10_000  # LRA encodes the first 10,000 bytes of each document
    (tmp_path / "new_aan_pairs.eval.tsv").write_text(AAN_ROWS[0] + "\n1\tonly\tthree\n0.5\ta\tb\tc\td\n")
    with pytest.raises(DataError, match=r"eval.tsv:2: expected 5"):
        tasks.get("retrieval", split="val", root=tmp_path)
    with pytest.warns(UserWarning, match="skipped 2 bad"):
        assert len(tasks.get("retrieval", split="val", root=tmp_path, on_error="skip")) == 1
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        tasks.get("retrieval", path=tmp_path / "empty.tsv")


# ------------------------------------------------------------------------------------------------ images


def test_images_from_archive_labels_pixels_and_views():
    files = _members(CIFAR)
    tr, va = tasks.get("image", root=CIFAR), tasks.get("image", split="val", root=CIFAR)
    assert (len(tr), len(va), tr.num_classes) == (270, 30, 10) and list(tr.classes) == list(CIFAR10_CLASSES)
    assert tr.label_names == list(CIFAR10_CLASSES)
    decoded = {np.asarray(Image.open(io.BytesIO(v)).convert("RGB")).tobytes(): CIFAR10_CLASSES.index(k.split("/")[-2])
               for k, v in files.items()}
    keys = set()
    for ds in (tr, va):
        for i in range(0, len(ds), 7):
            img, label = ds[i]
            assert img.shape == (32, 32, 3) and img.dtype == np.uint8
            assert decoded[img.tobytes()] == label
            keys.add(img.tobytes())
    img = tr[0][0]
    x, m = build_adapter(tr.adapter)([img])
    assert x.shape == (1, 1024) and 0 <= int(x.min()) and int(x.max()) <= 255 and m.all()
    x, m = build_adapter(tasks.get("image", root=CIFAR, view="rgb", size=2).adapter)([img])
    assert x.shape == (1, 1024, 3)
    x, m = build_adapter(tasks.get("image", root=CIFAR, view="patches", size=2).adapter)([img])
    assert x.shape == (1, 3, 32, 32) and m.shape == (1, 64)


def test_bad_images_are_named_bombs_refused(tmp_path, monkeypatch):
    root = tmp_path / "tree" / "train"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for k in range(5):
            Image.new("RGB", (8, 8), (k * 40, 0, 0)).save(root / cls / f"{k}.png")
    good = (root / "cat" / "0.png").read_bytes()
    (root / "dog" / "3.png").write_bytes(good[: len(good) // 2])  # truncated
    ds = tasks.get("image", root=tmp_path / "tree", val_fraction=0.5)
    with pytest.raises(DataError, match=r"dog/3.png: cannot decode"):
        [ds[i] for i in range(len(ds))]
    with pytest.warns(UserWarning, match="skipped 1 bad"):
        both = [tasks.get("image", root=tmp_path / "tree", split=s, val_fraction=0.5, on_error="skip") for s in ("train", "val")]
    assert sum(len(d) for d in both) == 9
    monkeypatch.setattr(_common, "MAX_IMAGE_PIXELS", 32)
    with pytest.raises(DataError, match="decompression bomb"):
        _common.read_image(good, "cat/0.png")


def _idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(head + arr.astype(np.uint8).tobytes())


def test_idx_files_as_fashion_mnist(tmp_path):
    rng = np.random.default_rng(0)
    imgs, labs = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(_idx(imgs))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(_idx(labs))
    tr = tasks.get("fashion_mnist", root=tmp_path, val_fraction=0.25)
    va = tasks.get("fashion_mnist", split="val", root=tmp_path, val_fraction=0.25)
    assert (len(tr), len(va)) == (15, 5) and tr.adapter.max_length == 784
    got = {tr[i][0].tobytes(): tr[i][1] for i in range(15)} | {va[i][0].tobytes(): va[i][1] for i in range(5)}
    assert got == {imgs[k].astype(np.uint8).tobytes(): int(labs[k]) for k in range(20)}
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 30]) + bytes(20)))
    with pytest.raises(DataError, match="truncated"):
        tasks.get("fashion_mnist", root=tmp_path)


def test_cifar_pickles_read_safely(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (5, 4, 3072)).astype(np.uint8)
    for b in range(5):
        with open(folder / f"data_batch_{b + 1}", "wb") as fh:
            pickle.dump({b"data": data[b], b"labels": [b, b, b, b]}, fh)
    ds = tasks.get("cifar10", root=tmp_path, val_fraction=0.25)
    img, label = ds[0]
    k = int(ds._idx[0])
    assert img.shape == (32, 32, 3) and label == k // 4
    assert np.array_equal(img, data[k // 4, k % 4].reshape(3, 32, 32).transpose(1, 2, 0))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh)
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        tasks.get("cifar10", root=tmp_path)


@needs_shared
def test_image_full_shared_archive():
    tr, va = tasks.get("image"), tasks.get("image", split="val")
    assert (len(tr), len(va)) == (45_000, 5_000)
    assert np.bincount(va.labels, minlength=10).min() > 400


def test_archive_limits_refuse_bombs():
    from multiseq.tasks._archive import iter_files

    with pytest.raises(DataError, match="decompression bomb"):
        list(iter_files(IMDB, lambda n: True, max_total=100_000))
    with pytest.raises(DataError, match="more than the 100 allowed per file"):
        list(iter_files(CIFAR, lambda n: True, max_member=100))

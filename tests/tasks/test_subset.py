"""Seeded, class-balanced subsets (issue #18 item 1): every size or limit goes through `balanced_indices`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import multiseq.tasks as tasks
from multiseq.tasks import Subset, balanced_indices

FIX = Path(__file__).parent.parent / "fixtures"
IMDB = FIX / "aclImdb_mini.tar.gz"
CIFAR = FIX / "cifar10_mini.tar.gz"


def test_balanced_indices_counts_seed_and_order():
    labels = np.repeat([0, 1, 2], [50, 30, 5])  # listed class by class, unequal
    idx = balanced_indices(labels, 15, seed=1)
    assert len(set(idx.tolist())) == 15
    assert np.bincount(labels[idx], minlength=3).tolist() == [5, 5, 5]
    more = balanced_indices(labels, 60, seed=1)  # class 2 runs out: the others fill the rest equally
    assert sorted(np.bincount(labels[more]).tolist()) == [5, 27, 28]
    assert np.array_equal(balanced_indices(labels, 15, seed=1), idx)  # seeded
    assert not np.array_equal(balanced_indices(labels, 15, seed=2), idx)
    assert not np.all(np.diff(idx) > 0)  # shuffled, not in file order
    assert len(balanced_indices(labels, None, 0)) == 85 and len(balanced_indices(labels, 1000, 0)) == 85
    assert np.bincount(np.asarray(["b"] * 3 + ["a"] * 3)[balanced_indices(["b"] * 3 + ["a"] * 3, 4, 0)] == "a").tolist() == [2, 2]
    with pytest.raises(ValueError):
        balanced_indices(labels, -1, 0)


def test_imdb_size_is_balanced_and_the_split_order_is_shuffled():
    ds = tasks.get("imdb", root=IMDB, size=64)
    assert len(ds) == 64 and np.bincount(ds.labels).tolist() == [32, 32]
    full = tasks.get("imdb", root=IMDB)
    first = full.labels[:64]
    assert 0 < first.sum() < 64  # the archive lists negatives first; the split's order is a seeded shuffle
    assert [ds[i][0] for i in range(5)] == [tasks.get("imdb", root=IMDB, size=64)[i][0] for i in range(5)]


def test_image_size_is_balanced():
    ds = tasks.get("image", root=CIFAR, size=20)
    counts = np.bincount(ds.labels, minlength=ds.num_classes)
    assert counts.max() - counts.min() <= 1 or counts.max() <= 2


def test_load_task_limit_is_a_balanced_subset_keeping_attributes():
    ds = tasks.load_task("text", "train", {"root": str(IMDB)}, limit=40, seed=3)
    assert isinstance(ds, Subset) and len(ds) == 40 and np.bincount(ds.labels).tolist() == [20, 20]
    assert ds.num_classes == 2 and ds.label_names == ["negative", "positive"] and ds.adapter.kind == "bytes"
    assert [ds[i][1] for i in range(40)] == ds.labels.tolist()
    with pytest.raises(ValueError, match="limit"):
        tasks.load_task("text", "train", {"root": str(IMDB)}, limit=0)


def test_text_classifier_fits_a_sized_task():
    from multiseq import TextClassifier

    clf = TextClassifier(model="local", input="bytes", max_length=64, steps=2, batch_size=16, progress=False,
                         model_options={"width": 16, "depth": 1})
    clf.fit(tasks.get("imdb", root=IMDB, size=200))
    assert list(clf.classes_) == ["negative", "positive"]

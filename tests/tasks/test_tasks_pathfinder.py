"""Pathfinder / Path-X: geometry of the generated images, determinism, pixel range, LRA layout, bad files."""

from __future__ import annotations

import numpy as np
import pytest

import multiseq.tasks as tasks
from multiseq.adapters import build_adapter
from multiseq.errors import ConfigError
from multiseq.tasks import pathfinder as pf
from multiseq.tasks._common import DataError
from multiseq.tasks.pathfinder_gen import render, spec_for

LIT = 20  # a pixel is lit above this (images are min-max rescaled to 0..255)


def _components(mask: np.ndarray) -> np.ndarray:
    """8-connected component labels (0 = background), by flood fill."""
    lab = np.zeros(mask.shape, int)
    n = 0
    H, W = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        if lab[y, x]:
            continue
        n += 1
        lab[y, x] = n
        stack = [(y, x)]
        while stack:
            cy, cx = stack.pop()
            for ny in range(max(cy - 1, 0), min(cy + 2, H)):
                for nx in range(max(cx - 1, 0), min(cx + 2, W)):
                    if mask[ny, nx] and not lab[ny, nx]:
                        lab[ny, nx] = n
                        stack.append((ny, nx))
    return lab


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    H, W = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= r * r:
                out[max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] |= mask[
                    max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
                ]
    return out


def _check_geometry(img: np.ndarray, label: int, info: dict) -> None:
    lit = img > LIT
    mk, m = info["marked"], info["margin"]
    own = (info["targets"][mk] > 0.3) & lit
    other = (info["targets"][1 - mk] > 0.3) & lit
    for t in info["targets"]:  # every target pixel is visible in the image
        assert lit[t > 0.5].all()
    m1, m2 = (np.asarray(c) for c in info["markers"])

    def dist(mask: np.ndarray, c: np.ndarray) -> float:
        return float(np.sqrt(((np.argwhere(mask) - c) ** 2).sum(1)).min())

    assert dist(own, m1) <= 1.5  # the first marker sits on the marked snake
    if label == 1:
        # a lit path along the marked snake joins the markers: consecutive paddles are about 2m apart, so gaps of
        # up to 2(m + 1) pixels are bridged, using the marked snake's own lit pixels only
        lab = _components(_dilate(own, m + 1))
        a, b = lab[tuple(np.round(m1).astype(int))], lab[tuple(np.round(m2).astype(int))]
        assert a > 0 and a == b
        assert dist(own, m2) <= 1.5
    else:
        # the second marker ends the other target snake, not the marked one
        assert dist(other, m2) <= 1.5 and dist(own, m2) >= 2.0


@pytest.mark.parametrize("index", range(12))
def test_markers_are_joined_by_a_lit_path_exactly_when_label_is_1_at_32px(index):
    img, label, info = render(spec_for(32), pf.image_seed(0, 32, 14, index), with_info=True)
    assert img.shape == (32, 32) and img.dtype == np.uint8
    _check_geometry(img, label, info)


@pytest.mark.parametrize("index", [2, 6])
def test_path_x_image_geometry_and_range(index):
    # images 2 (label 1) and 6 (label 0) of seed 7 are cheap to place (the two 14-paddle snakes fit within a
    # few dozen attempts; the average at 128 px is a few hundred)
    img, label, info = render(spec_for(128), pf.image_seed(7, 128, 14, index), with_info=True)
    assert label == {2: 1, 6: 0}[index]
    assert img.shape == (128, 128) and img.min() == 0 and img.max() == 255
    assert info["margin"] in (2, 3)
    _check_geometry(img, label, info)


def test_rendering_is_deterministic_per_image_seed():
    sp = spec_for(32)
    a = render(sp, pf.image_seed(0, 32, 14, 5))
    b = render(sp, pf.image_seed(0, 32, 14, 5))
    c = render(sp, pf.image_seed(0, 32, 14, 6))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert not np.array_equal(a[0], c[0])


def test_spec_follows_lra_parameters():
    s = spec_for(32)
    assert (s.paddle_length, s.paddle_thickness, s.seed_distance, s.marker_radius) == (2, 0.5, 7, 1.5)
    assert s.num_distractor_snakes == 20 // 4 and s.distractor_length == 4
    assert spec_for(128).num_distractor_snakes == 35 // 4 and spec_for(128).paddle_margin_list == (2, 3)
    assert spec_for(64, 9).distractor_length == 3
    with pytest.raises(ValueError, match="resolution"):
        spec_for(48)


@pytest.fixture(scope="module")
def val48(tmp_path_factory):
    root = tmp_path_factory.mktemp("pf")
    return tasks.get("pathfinder", split="val", root=root, size=48, workers=2), root


def test_dataset_balance_pixels_layout_and_regeneration(val48):
    ds, root = val48
    assert (ds.task, ds.num_classes, ds.pair, len(ds)) == ("pathfinder", 2, False, 48)
    assert ds.adapter.kind == "pixels" and ds.adapter.max_length == 1024
    assert ds.adapter.options["image_size"] == [32, 32]
    assert ds.label_names == ["disconnected", "connected"]
    x, mask = build_adapter(ds.adapter)([ds[0][0], ds[1][0]])  # pixel tokens are the pixel values, row-major
    assert x.shape == (2, 1024) and mask.all() and x[1].tolist() == ds[1][0].reshape(-1).tolist()
    # label balance: 48 fair coin flips fall in 12..36 with probability > 0.999
    assert 12 <= int(ds.labels.sum()) <= 36
    means = []
    for i in range(len(ds)):
        img, label = ds[i]
        assert img.shape == (32, 32) and img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
        assert label == ds.labels[i]
        means.append(img.mean())
    assert 3 < np.mean(means) < 80  # mostly dark background with thin bright curves
    # LRA layout: val of 200,000 starts at index 160,000 -> imgs/160/sample_<n>.png, text metadata lines
    base = root / "pathfinder32" / "curv_contour_length_14"
    lines = (base / "metadata" / "160.npy").read_text().splitlines()
    assert len(lines) == 48
    f = lines[5].split()
    assert f[:3] == ["imgs/160", "sample_5.png", "160005"] and len(f) == 11 and f[5] == "14"
    # any image can be regenerated alone from its seed
    img, label = render(spec_for(32), pf.image_seed(0, 32, 14, 160005))
    assert np.array_equal(img, ds[5][0]) and label == ds[5][1]


def test_reading_a_release_folder_drops_empty_images_with_a_report(val48, tmp_path):
    ds, root = val48
    base = root / "pathfinder32" / "curv_contour_length_14"
    rel = tmp_path / "pathfinder32" / "curv_contour_length_14"
    (rel / "imgs" / "0").mkdir(parents=True)
    (rel / "metadata").mkdir()
    lines = []
    for n in range(21):
        src = base / "imgs" / "160" / f"sample_{n}.png"
        (rel / "imgs" / "0" / f"sample_{n}.png").write_bytes(b"" if n == 3 else src.read_bytes())
        lines.append(f"imgs/0 sample_{n}.png {n} {ds.labels[n]} 1.0 14 4 2 0.5 1 1")
    (rel / "metadata" / "0.npy").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="skipped 1 bad item"):
        train = tasks.get("pathfinder", split="train", path=rel)
    assert len(train) == 16 and any("sample_3.png: empty" in s for s in train.skipped)
    assert np.array_equal(train[3][0], ds[4][0])  # sample_3 was dropped, so item 3 is sample_4
    with pytest.warns(UserWarning, match="empty image"):
        test = tasks.get("pathfinder", split="test", path=rel)
    assert len(test) == 2 and np.array_equal(test[1][0], ds[20][0])


def test_bad_files_are_named(tmp_path):
    rel = tmp_path / "r"
    (rel / "imgs" / "0").mkdir(parents=True)
    (rel / "metadata").mkdir()
    (rel / "imgs" / "0" / "sample_0.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (rel / "metadata" / "0.npy").write_text("imgs/0 sample_0.png 0 0\nimgs/0 sample_1.png 1 7\n")
    with pytest.raises(DataError, match=r"0.npy:2: label '7'"):
        tasks.get("pathfinder", split="train", path=rel)
    (rel / "metadata" / "0.npy").write_text("imgs/0 sample_0.png 0 0\n" * 10)
    ds = tasks.get("pathfinder", split="train", path=rel)
    with pytest.raises(DataError, match="sample_0.png: cannot decode"):
        ds[0]
    with pytest.warns(UserWarning, match="skipped 8 bad"):
        assert len(tasks.get("pathfinder", split="train", path=rel, on_error="skip")) == 0
    with pytest.raises(DataError, match="no metadata"):
        tasks.get("pathfinder", split="train", path=tmp_path)
    with pytest.raises(ConfigError, match="contour_length"):
        tasks.get("pathx", contour_length=7, root=tmp_path)
    with pytest.raises(ConfigError, match="size"):
        tasks.get("pathfinder", split="val", size=30_000, root=tmp_path)

"""Issue 18 item 8: integer images are scaled by their dtype (never by their values), out-of-range values are
refused, and one decoder serves image-folder tasks and `ImageClassifier` / the adapters alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from multiseq import tasks
from multiseq.adapters import build_adapter
from multiseq.adapters.images import decode_image, to_float_array
from multiseq.errors import InputError


@pytest.mark.parametrize(
    "dtype, divisor",
    [(np.uint8, 255), (np.int8, 255), (np.uint16, 65535), (np.int16, 65535), (np.int32, 255), (np.int64, 255),
     (np.uint32, 255), (np.uint64, 255)],
)
def test_integer_scale_comes_from_the_dtype(dtype, divisor):
    a = np.array([[10, 20], [30, 40]], dtype=dtype)
    np.testing.assert_allclose(to_float_array(a)[..., 0], a.astype(np.float64) / divisor, rtol=1e-6)
    # The same pixel value gives the same float whatever the rest of the image holds.
    if np.iinfo(dtype).max >= 256 and divisor == 65535:
        b = a.copy()
        b[1, 1] = 256
        assert to_float_array(b)[0, 0, 0] == to_float_array(a)[0, 0, 0]


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
def test_wide_integers_outside_8_bit_are_refused_not_rescaled(dtype):
    a = np.full((4, 4), 10, dtype=dtype)
    a[0, 0] = 256  # one bright pixel used to darken the whole image 257x
    with pytest.raises(InputError, match=r"\[0, 255\].*scale=65535"):
        to_float_array(a)
    out = to_float_array(a, scale=65535)
    np.testing.assert_allclose(out[1, 1, 0], 10 / 65535, rtol=1e-6)
    a[0, 0] = 70000  # beyond 16 bits: refused, never clipped
    with pytest.raises(InputError, match="scale=65535 must lie in"):
        to_float_array(a, scale=65535)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_negative_integers_are_refused(dtype):
    with pytest.raises(InputError, match="must lie in"):
        to_float_array(np.array([[-1, 3]], dtype=dtype))


def test_torch_int64_and_bad_scales():
    t = torch.full((3, 2, 2), 51, dtype=torch.int64)
    np.testing.assert_allclose(to_float_array(t), 0.2, rtol=1e-6)
    for bad in (0, -1, float("nan"), "255"):
        with pytest.raises(InputError, match="scale must be"):
            to_float_array(np.zeros((2, 2), np.uint8), scale=bad)


def _pngs(folder):
    """One PNG per problem mode, all 4x4, with a fully transparent pixel at (0, 0) where there is alpha."""
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgba[0, 0, 3], rgba[1, 1, 3] = 0, 128
    la = np.stack([np.full((4, 4), 60, np.uint8), rgba[..., 3]], -1)
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.info["transparency"] = 0
    i16 = Image.fromarray(np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000)
    images = {"rgba": Image.fromarray(rgba, "RGBA"), "la": Image.fromarray(la, "LA"), "p": p, "i16": i16}
    paths = {}
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for name, img in images.items():
            paths[f"{cls}/{name}"] = folder / cls / f"{name}.png"
            img.save(paths[f"{cls}/{name}"], transparency=0) if name == "p" else img.save(paths[f"{cls}/{name}"])
    return paths


def test_png_modes_read_the_same_through_a_task_and_the_adapter(tmp_path):
    paths = _pngs(tmp_path / "tree")
    assert Image.open(paths["a/i16"]).mode.startswith("I")
    assert Image.open(paths["a/p"]).mode == "P" and "transparency" in Image.open(paths["a/p"]).info
    seen = set()
    for split in ("train", "val"):
        ds = tasks.get("image", root=tmp_path / "tree", split=split, view="rgb", val_fraction=0.5)
        adapter = build_adapter(ds.adapter)
        for i in range(len(ds)):
            img, label = ds[i]
            rel = ds._src.files[int(ds._idx[i])]
            seen.add(rel)
            from_task = to_float_array(img)
            from_file = to_float_array(paths[rel.removesuffix(".png")])  # what ImageClassifier does with a path
            np.testing.assert_array_equal(from_task, from_file)
            x1, _ = adapter([img])
            x2, _ = adapter([str(paths[rel.removesuffix(".png")])])
            torch.testing.assert_close(x1, x2, atol=0, rtol=0)
            if "i16" in rel:
                assert img.dtype == np.uint16
                np.testing.assert_allclose(from_file[..., 0].ravel(), np.arange(16) * 4000 / 65535, rtol=1e-6)
            elif rel.endswith(("rgba.png", "la.png")):
                assert (from_task[0, 0] == 1.0).all(), f"{rel}: a transparent pixel is white"
    assert len(seen) == 8
    # alpha composited onto white, the same for the P image's transparent index
    p = to_float_array(paths["a/p"])
    assert (p[0, 0] == 1.0).all() and np.allclose(p[1, 1], np.array([10, 20, 30]) / 255)


def test_pil_32_bit_images_outside_16_bit_are_refused():
    img = Image.fromarray(np.array([[0, 70000]], dtype=np.int32), "I")
    with pytest.raises(InputError, match=r"\[0, 65535\]"):
        decode_image(img)
    ok = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), "I")
    np.testing.assert_allclose(to_float_array(ok)[..., 0], [[0.0, 1.0]])

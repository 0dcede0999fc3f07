"""Adapters against the bad-input list and their documented conventions."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from multiseq.adapters.bytes import BytesAdapter
from multiseq.adapters.images import load_image, to_float_array
from multiseq.adapters.patches import PatchAdapter
from multiseq.adapters.pixels import PixelAdapter, lra_gray_tokens
from multiseq.errors import ConfigError, InputError

# ---- bytes ----


def test_bytes_lra_convention():
    ids, mask = BytesAdapter()(["ab", "é"])
    assert ids[0, :2].tolist() == [ord("a") + 1, ord("b") + 1]
    assert ids[1, :2].tolist() == [0xC3 + 1, 0xA9 + 1]  # UTF-8 of é, shifted by one
    assert mask.tolist() == [[True, True], [True, True]]
    ids, mask = BytesAdapter()(["abc", "a"])
    assert ids[1].tolist() == [98, 0, 0] and mask[1].tolist() == [True, False, False]


def test_bytes_cls_eos_and_decode():
    a = BytesAdapter(add_cls=True, add_eos=True)
    ids, _ = a("hi")
    assert ids[0].tolist() == [257, ord("h") + 1, ord("i") + 1, 258]
    assert a.decode(ids[0]) == "hi"


def test_bytes_empty_text_is_all_padding():
    ids, mask = BytesAdapter()([""])
    assert ids.shape == (1, 1) and not mask.any()


def test_bytes_non_utf8_bytes_pass_through():
    ids, mask = BytesAdapter()([b"\xff\xfe\x00"])
    assert ids[0].tolist() == [256, 255, 1] and mask.all()


def test_bytes_lone_surrogate():
    with pytest.raises(InputError, match="position 1"):
        BytesAdapter()(["a\ud800b"])
    ids, _ = BytesAdapter(errors="replace")(["a\ud800b"])
    assert ids[0].tolist() == [ord("a") + 1, ord("?") + 1, ord("b") + 1]
    ids, _ = BytesAdapter(errors="ignore")(["a\ud800b"])
    assert ids[0].tolist() == [ord("a") + 1, ord("b") + 1]


def test_bytes_truncation_policies():
    text = "abcdefghij"
    assert BytesAdapter(max_length=4)(text)[0][0].tolist() == [98, 99, 100, 101]
    assert BytesAdapter(max_length=4, truncation="left")(text)[0][0].tolist() == [104, 105, 106, 107]
    with pytest.raises(InputError, match="more than the 4 allowed"):
        BytesAdapter(max_length=4, truncation="error")(text)
    ids, _ = BytesAdapter(max_length=4, add_cls=True, add_eos=True)(text)
    assert ids[0].tolist() == [257, 98, 99, 258]


def test_bytes_long_text_and_pad_to_max():
    ids, mask = BytesAdapter(max_length=1000)("x" * 1_000_000)
    assert ids.shape == (1, 1000) and mask.all()
    ids, mask = BytesAdapter(max_length=16, pad_to="max_length")("ab")
    assert ids.shape == (1, 16) and mask.sum() == 2


def test_bytes_bad_types_and_options():
    with pytest.raises(TypeError):
        BytesAdapter()(123)
    with pytest.raises(InputError, match="str or bytes"):
        BytesAdapter()([1, 2])
    with pytest.raises(ConfigError, match="truncation"):
        BytesAdapter(truncation="middle")
    with pytest.raises(ConfigError, match="max_length"):
        BytesAdapter(max_length=0)


# ---- pixels ----


def _rgb(seed=0, size=(8, 8)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_lra_gray_rule_exact():
    a = _rgb()
    want = np.floor((0.2989 * a[..., 0] / 255 + 0.5870 * a[..., 1] / 255 + 0.1140 * a[..., 2] / 255) * 255.5)
    assert (lra_gray_tokens(a) == want.astype(np.uint8)).all()
    assert lra_gray_tokens(np.full((2, 2, 3), 255, np.uint8)).max() == 255


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "I;16", "I", "F"])
def test_pixels_every_pil_mode(mode):
    base = Image.fromarray(_rgb(size=(32, 32)))
    if mode == "I;16":
        img = Image.fromarray((np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16))
    elif mode == "I":
        img = Image.fromarray((np.arange(32 * 32).reshape(32, 32) * 60).astype(np.int32))
    elif mode == "F":
        img = Image.fromarray(np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32))
    else:
        img = base.convert(mode)
    x, mask = PixelAdapter()(img)
    assert x.shape == (1, 1024) and x.dtype == torch.long and mask.all()
    assert 0 <= int(x.min()) and int(x.max()) <= 255
    if mode in ("I;16", "I", "F"):
        assert int(x.max()) > 200  # full range is used, not clipped at 8 bits


def test_pixels_rgba_composited_on_white():
    a = np.zeros((32, 32, 4), np.uint8)  # fully transparent black
    x, _ = PixelAdapter()(Image.fromarray(a, "RGBA"))
    assert (x == 255).all()


def test_pixels_features_and_sizes():
    ad = PixelAdapter(color="rgb", as_tokens=False)
    x, m = ad([_rgb(size=(32, 32)), _rgb(1, size=(32, 32))])
    assert x.shape == (2, 1024, 3) and x.dtype == torch.float32
    with pytest.raises(InputError, match="expects 32x32"):
        PixelAdapter()(_rgb(size=(8, 8)))
    x, _ = PixelAdapter(resize=True)(_rgb(size=(8, 8)))
    assert x.shape == (1, 1024)
    with pytest.raises(ConfigError):
        PixelAdapter(color="rgb", as_tokens=True)


def test_pixels_tensor_and_float_inputs():
    t = torch.rand(3, 32, 32)
    x, _ = PixelAdapter()(t)
    assert x.shape == (1, 1024)
    with pytest.raises(InputError, match="NaN"):
        PixelAdapter()(torch.full((32, 32), float("nan")))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        PixelAdapter()(np.full((32, 32), 3.0))
    with pytest.raises(InputError, match="shape"):
        PixelAdapter()(np.zeros((32, 32, 2), np.uint8))
    with pytest.raises(InputError, match="unsupported"):
        PixelAdapter()(object())
    with pytest.raises(InputError, match="dtype"):
        PixelAdapter()(np.zeros((32, 32), np.complex64))


def test_truncated_and_corrupt_files(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb(size=(64, 64))).save(buf, format="PNG")
    (tmp_path / "trunc.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    for name in ("trunc.png", "junk.jpg", "missing.png"):
        with pytest.raises(InputError, match=name):
            load_image(tmp_path / name)
    good = tmp_path / "good.png"
    good.write_bytes(buf.getvalue())
    assert to_float_array(str(good)).shape == (64, 64, 3)


# ---- patches ----


def test_patches_policies():
    ad = PatchAdapter(image_size=(30, 30), patch_size=4, policy="pad")
    assert ad.grid == (8, 8)
    x, m = ad(_rgb(size=(30, 30)))
    assert x.shape == (1, 3, 30, 30) and m.shape == (1, 64)
    ad = PatchAdapter(image_size=(30, 30), patch_size=4, policy="resize")
    assert ad.image_size == (28, 28) or ad.image_size == (32, 32)
    with pytest.raises(ConfigError, match="multiple"):
        PatchAdapter(image_size=(30, 30), patch_size=4, policy="error")


def test_patch_model_handles_padding_policy():
    import multiseq

    model = multiseq.create_model(
        "attention_patches_tiny", adapter={"options": {"image_size": [30, 30], "policy": "pad"}}
    )
    out = model(*model.encode([_rgb(size=(30, 30)), Image.fromarray(_rgb(2, size=(40, 40)))]))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_model_rejects_bad_tensors():
    import multiseq

    model = multiseq.create_model("local_pixels_tiny", adapter={"options": {"as_tokens": False, "color": "rgb"}})
    x = torch.randn(1, 1024, 3)
    x[0, 5, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        model(x)
    tok = multiseq.create_model("local_bytes_tiny")
    with pytest.raises(InputError, match="integer"):
        tok(torch.randn(1, 10))
    with pytest.raises(InputError, match=r"\[0, 259\)"):
        tok(torch.full((1, 10), 999))
    with pytest.raises(InputError, match="exceeds"):
        tok(torch.ones(1, 5000, dtype=torch.long))

"""Image input normalisation shared by the pixel and patch adapters, and the one image decoder of the package.

Any PIL mode, numpy array or tensor becomes a float32 array `(H, W, 3)` or `(H, W, 1)` in [0, 1]. The scale of
integer data comes from its dtype (or an explicit `scale=`), never from its values; values outside the dtype's
range are refused with `InputError`, never clipped:

* PIL images and files are decoded by `decode_image` (image-folder tasks use the same function, so a file reads
  the same through a task and through `ImageClassifier`): `1`, `L`, `P`, `RGB`, `CMYK`, `YCbCr`, `LAB`, `HSV`
  through PIL's own conversion to 8-bit; modes with alpha (`LA`, `PA`, `RGBA`, `P` with transparency) are
  composited onto white; 16-bit (`I;16*`) and 32-bit integer `I` become uint16 (`I` outside [0, 65535] is
  refused); float `F` must already lie in [0, 1].
* numpy / torch: `(H, W)`, `(H, W, C)` (numpy) or `(C, H, W)` (torch) with C in {1, 3, 4} (4: alpha, composited
  on white). Scale by dtype: `bool` -> {0, 1}; `uint8` / `int8` -> / 255; `uint16` / `int16` -> / 65535;
  `int32`, `uint32`, `int64`, `uint64` -> / 255 and must hold 8-bit values [0, 255] (pass `scale=65535` for
  16-bit data held in a wide integer type); negative integers are refused; floats must be finite and in [0, 1].
  `scale=s` divides any numeric input by `s` instead, and the result must lie in [0, 1].
* a path (`str` or `pathlib.Path`): opened with PIL, which refuses decompression bombs; truncated or corrupt
  files raise `InputError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from multiseq.errors import InputError

LRA_GRAY = (0.2989, 0.5870, 0.1140)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file; errors name the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError:
        raise InputError(f"image file not found: {path}") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"refusing image {path}: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"cannot read image {path}: {e} (truncated or not an image?)") from None


def decode_image(img: Image.Image) -> np.ndarray:
    """A PIL image -> its pixel array, before any scaling: the one decoder of the package.

    Returns:
        uint8 `(H, W)` for `1` / `L`; uint8 `(H, W, 3)` for colour modes and for every mode with alpha (`LA`,
        `PA`, `RGBA`, `P` with transparency: composited onto white); uint16 `(H, W)` for `I;16*` and `I` (values
        outside [0, 65535] raise `InputError`); float32 `(H, W)` for `F`. `to_float_array` scales by the dtype.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img).astype(np.int64)
        lo, hi = int(a.min(initial=0)), int(a.max(initial=0))
        if lo < 0 or hi > 65535:
            raise InputError(f"32-bit integer image (PIL mode {mode}) has values in [{lo}, {hi}]; 16-bit images "
                             f"must lie in [0, 65535] (convert it, or pass an array with an explicit scale=)")
        return a.astype(np.uint16)
    if mode == "F":
        return np.asarray(img, dtype=np.float32)
    if mode in ("LA", "PA", "RGBA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _float_array(a: np.ndarray) -> np.ndarray:
    if not np.isfinite(a).all():
        raise InputError("image contains NaN or Inf values; pixel values must be finite and within [0, 1]")
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"float image values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]; divide by 255 for 8-bit data"
        )
    return a.astype(np.float32)


# dtype -> the divisor that maps its value range onto [0, 1], and the largest value accepted.
_INT_SCALES = {
    np.dtype(np.uint8): (255.0, 255), np.dtype(np.int8): (255.0, 127),
    np.dtype(np.uint16): (65535.0, 65535), np.dtype(np.int16): (65535.0, 32767),
    np.dtype(np.int32): (255.0, 255), np.dtype(np.uint32): (255.0, 255),
    np.dtype(np.int64): (255.0, 255), np.dtype(np.uint64): (255.0, 255),
}


def _numeric_to_array(a: np.ndarray, channels_first: bool, scale: float | None = None) -> np.ndarray:
    if a.ndim == 3 and channels_first:
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        layout = "(C, H, W)" if channels_first else "(H, W, C)"
        raise InputError(f"image array must be (H, W) or {layout} with C in 1, 3, 4; got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"image has an empty side: shape {a.shape}")
    if scale is not None:
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0 or not np.isfinite(scale):
            raise InputError(f"scale must be a positive number (e.g. 255 or 65535), got {scale!r}")
        if not (a.dtype == np.bool_ or a.dtype in _INT_SCALES or np.issubdtype(a.dtype, np.floating)):
            raise InputError(f"unsupported image dtype {a.dtype}; use an integer, bool or float array")
        scaled = a.astype(np.float64) / float(scale)
        if not np.isfinite(scaled).all() or scaled.min(initial=0) < 0 or scaled.max(initial=0) > 1:
            raise InputError(
                f"image values divided by scale={scale} must lie in [0, 1]; got range "
                f"[{float(a.min()):.6g}, {float(a.max()):.6g}] ({a.dtype})"
            )
        a = scaled
    elif a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype in _INT_SCALES:
        divisor, top = _INT_SCALES[a.dtype]
        lo, hi = int(a.min(initial=0)), int(a.max(initial=0))
        if lo < 0 or hi > top:
            bits = "8-bit" if divisor == 255.0 else "16-bit"
            hint = " Pass scale=65535 for 16-bit data (or scale= its maximum), or convert to uint8 / uint16." \
                if a.dtype.itemsize > 2 else ""
            raise InputError(
                f"{a.dtype} image values must lie in [0, {top}] ({bits} data, divided by {int(divisor)}); got range "
                f"[{lo}, {hi}]. The scale comes from the dtype, never from the values.{hint}"
            )
        a = a.astype(np.float32) / divisor
    elif np.issubdtype(a.dtype, np.floating):
        a = _float_array(a.astype(np.float64))
    else:
        raise InputError(f"unsupported image dtype {a.dtype}; use uint8, uint16 or float in [0, 1]")
    if a.shape[-1] == 4:  # composite onto white
        alpha = a[..., 3:4]
        a = a[..., :3] * alpha + (1.0 - alpha)
    return a.astype(np.float32)


def to_float_array(image: Any, scale: float | None = None) -> np.ndarray:
    """Any supported image -> float32 `(H, W, 1 or 3)` in [0, 1].

    Args:
        image: a PIL image, a file path, a numpy array `(H, W[, C])` or a tensor `(C, H, W)` / `(H, W)`.
        scale: divide numeric arrays by this instead of their dtype's scale (see the module docstring); the result
            must lie in [0, 1]. Not used for PIL images and files (their mode fixes the scale).
    """
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise InputError(f"image has an empty side: {image.size}")
        return _numeric_to_array(decode_image(image), channels_first=False)
    if isinstance(image, torch.Tensor):
        return _numeric_to_array(image.detach().cpu().numpy(), channels_first=True, scale=scale)
    if isinstance(image, np.ndarray):
        return _numeric_to_array(image, channels_first=False, scale=scale)
    raise InputError(
        f"unsupported image input {type(image).__name__}; give a PIL image, a numpy array, a tensor or a file path"
    )


def to_gray(a: np.ndarray) -> np.ndarray:
    """(H, W, C) in [0, 1] -> (H, W) gray with LRA's weights `0.2989 R + 0.5870 G + 0.1140 B`."""
    if a.shape[-1] == 1:
        return a[..., 0]
    r, g, b = (a[..., i].astype(np.float64) for i in range(3))
    return (LRA_GRAY[0] * r + LRA_GRAY[1] * g + LRA_GRAY[2] * b).astype(np.float32)


def to_rgb(a: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W, 3)."""
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased) resize of a float (H, W, C) array to `size` = (H, W)."""
    if a.shape[:2] == tuple(size):
        return a
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
    t = torch.nn.functional.interpolate(t, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return t[0].permute(1, 2, 0).clamp(0, 1).numpy()

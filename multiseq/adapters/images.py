"""Image input normalisation shared by the pixel and patch adapters.

Any PIL mode, numpy array or tensor becomes a float32 array `(H, W, 3)` or `(H, W, 1)` in [0, 1]:

* PIL: `1`, `L`, `P`, `RGB`, `CMYK`, `YCbCr`, `LAB`, `HSV` through PIL's own conversion; modes with alpha
  (`LA`, `PA`, `RGBA`, `P` with transparency) are composited onto white; 16-bit (`I;16*`) is scaled by 1/65535,
  32-bit integer `I` is clipped to [0, 65535] and scaled the same way; float `F` must already lie in [0, 1].
* numpy / torch: `(H, W)`, `(H, W, C)` (numpy) or `(C, H, W)` (torch) with C in {1, 3, 4}; uint8 / 16-bit
  integers are scaled by their range; floats must be finite and within [0, 1]; bool maps to {0, 1}.
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
            return img.copy() if img.mode != "P" else img.copy()
    except FileNotFoundError:
        raise InputError(f"image file not found: {path}") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"refusing image {path}: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"cannot read image {path}: {e} (truncated or not an image?)") from None


def _pil_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img, dtype=np.float64)
        return (np.clip(a, 0, 65535) / 65535.0)[..., None].astype(np.float32)
    if mode == "F":
        return _float_array(np.asarray(img, dtype=np.float64))[..., None]
    has_alpha = mode in ("LA", "PA", "RGBA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode in ("1", "L"):
        return (np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[..., None]
    else:
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def _float_array(a: np.ndarray) -> np.ndarray:
    if not np.isfinite(a).all():
        raise InputError("image contains NaN or Inf values; pixel values must be finite and within [0, 1]")
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"float image values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]; divide by 255 for 8-bit data"
        )
    return a.astype(np.float32)


def _numeric_to_array(a: np.ndarray, channels_first: bool) -> np.ndarray:
    if a.ndim == 3 and channels_first:
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        layout = "(C, H, W)" if channels_first else "(H, W, C)"
        raise InputError(f"image array must be (H, W) or {layout} with C in 1, 3, 4; got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"image has an empty side: shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype in (np.uint16, np.int16, np.int32, np.uint32, np.int64):
        if a.min(initial=0) < 0:
            raise InputError(f"integer image has negative values (dtype {a.dtype})")
        scale = 255.0 if a.max(initial=0) <= 255 and a.dtype != np.uint16 else 65535.0
        a = np.clip(a, 0, 65535).astype(np.float32) / scale
    elif np.issubdtype(a.dtype, np.floating):
        a = _float_array(a.astype(np.float64))
    else:
        raise InputError(f"unsupported image dtype {a.dtype}; use uint8, uint16 or float in [0, 1]")
    if a.shape[-1] == 4:  # composite onto white
        alpha = a[..., 3:4]
        a = a[..., :3] * alpha + (1.0 - alpha)
    return a.astype(np.float32)


def to_float_array(image: Any) -> np.ndarray:
    """Any supported image -> float32 `(H, W, 1 or 3)` in [0, 1]."""
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise InputError(f"image has an empty side: {image.size}")
        return _pil_to_array(image)
    if isinstance(image, torch.Tensor):
        return _numeric_to_array(image.detach().cpu().numpy(), channels_first=True)
    if isinstance(image, np.ndarray):
        return _numeric_to_array(image, channels_first=False)
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

"""Image corruptions at severities 1 to 5 with the ImageNet-C conventions (Hendrycks and Dietterich, ICLR 2019).

Two constant sets: `cifar` (the CIFAR-10-C constants, used by default for images whose shorter side is at most
64 px) and `imagenet` (the ImageNet-C constants, for larger images). Every corruption is seeded through an explicit
`numpy.random.Generator` (or an int seed). Occlusion is not part of ImageNet-C: one random square filled with mid
gray, covering 5, 10, 20, 30 or 40% of the image.

Input: a PIL image (any mode), a numpy array (H, W) / (H, W, C) or a tensor (C, H, W) / (H, W); the result has the
same kind, shape and dtype (PIL: 1/L/P/LA -> L, I;16 stays I;16, other modes -> RGB), values in the valid range.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from multiseq.adapters.images import load_image, to_float_array
from multiseq.errors import ConfigError, InputError, unknown_name

SEVERITIES = (1, 2, 3, 4, 5)

# Severity constants, per corruption: (CIFAR-10-C, ImageNet-C).
CONSTANTS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "gaussian_noise": ((0.04, 0.06, 0.08, 0.09, 0.10), (0.08, 0.12, 0.18, 0.26, 0.38)),
    "shot_noise": ((500, 250, 100, 75, 50), (60, 25, 12, 5, 3)),
    "impulse_noise": ((0.01, 0.02, 0.03, 0.05, 0.07), (0.03, 0.06, 0.09, 0.17, 0.27)),
    "gaussian_blur": ((0.4, 0.6, 0.7, 0.8, 1.0), (1, 2, 3, 4, 6)),
    "jpeg_compression": ((80, 65, 58, 50, 40), (25, 18, 15, 10, 7)),
    "contrast": ((0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05)),
    "brightness": ((0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5)),
    "pixelate": ((0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25)),
    "occlusion": ((0.05, 0.1, 0.2, 0.3, 0.4), (0.05, 0.1, 0.2, 0.3, 0.4)),
}
CORRUPTIONS: tuple[str, ...] = tuple(CONSTANTS)


def _constant(name: str, severity: int, profile: str) -> float:
    return CONSTANTS[name][0 if profile == "cifar" else 1][severity - 1]


def _rgb_to_hsv(a: np.ndarray) -> np.ndarray:
    from matplotlib.colors import rgb_to_hsv

    return rgb_to_hsv(a)


def _hsv_to_rgb(a: np.ndarray) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb

    return hsv_to_rgb(a)


def _apply(a: np.ndarray, name: str, c: float, rng: np.random.Generator) -> np.ndarray:
    """a: float (H, W, C) in [0, 1] -> corrupted float (H, W, C) in [0, 1]."""
    H, W, C = a.shape
    if name == "gaussian_noise":
        out = a + rng.normal(scale=c, size=a.shape)
    elif name == "shot_noise":
        out = rng.poisson(a * c) / c
    elif name == "impulse_noise":
        u = rng.random(a.shape)
        out = np.where(u < c / 2, 0.0, np.where(u < c, 1.0, a))
    elif name == "gaussian_blur":
        out = _gaussian_blur(a, c)
    elif name == "jpeg_compression":
        out = _jpeg(a, int(c))
    elif name == "contrast":
        mean = a.mean(axis=(0, 1), keepdims=True)
        out = (a - mean) * c + mean
    elif name == "brightness":
        if C == 3:
            hsv = _rgb_to_hsv(np.clip(a, 0, 1))
            hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
            out = _hsv_to_rgb(hsv)
        else:
            out = a + c
    elif name == "pixelate":
        small = (max(1, int(W * c)), max(1, int(H * c)))
        out = np.stack([_pixelate(a[..., k], small) for k in range(C)], -1)
    elif name == "occlusion":
        side = max(1, int(round(np.sqrt(c * H * W))))
        sh, sw = min(side, H), min(side, W)
        y, x = int(rng.integers(0, H - sh + 1)), int(rng.integers(0, W - sw + 1))
        out = a.copy()
        out[y : y + sh, x : x + sw] = 0.5
    else:  # pragma: no cover - guarded by corrupt()
        raise AssertionError(name)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _to_pil_gray(x: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.round(x * 255), 0, 255).astype(np.uint8))


def _gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    # Float precision (no 8-bit quantisation), kernel truncated at 4 sigma, reflected borders.
    from torchvision.transforms.functional import gaussian_blur

    if min(a.shape[:2]) < 2:
        return a
    # Reflect padding needs a radius below the shorter side.
    radius = max(1, min(int(4.0 * sigma + 0.5), min(a.shape[:2]) - 1))
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)
    k = 2 * radius + 1
    return gaussian_blur(t, [k, k], [sigma, sigma]).permute(1, 2, 0).numpy()


def _pixelate(x: np.ndarray, small: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(x.astype(np.float32))
    return np.asarray(img.resize(small, Image.BOX).resize(img.size, Image.NEAREST), dtype=np.float32)


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    img = Image.fromarray(u8[..., 0] if a.shape[-1] == 1 else u8)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    out = np.asarray(Image.open(buf), dtype=np.float32) / 255.0
    return out[..., None] if out.ndim == 2 else out


def corrupt(
    image: Any,
    name: str,
    severity: int,
    seed: int | np.random.Generator = 0,
    profile: str | None = None,
) -> Any:
    """Corrupt an image with `name` at `severity` in 1..5 (0 returns the input unchanged).

    Args:
        image: PIL image, numpy array or tensor (see the module docstring).
        name: one of `CORRUPTIONS`.
        severity: 0 (identity) to 5.
        seed: int seed or `numpy.random.Generator`.
        profile: `cifar`, `imagenet`, or None to choose by image size (shorter side <= 64 px -> cifar).

    Returns:
        The corrupted image, same kind, shape and dtype as the input.
    """
    if name not in CONSTANTS:
        raise unknown_name("image corruption", name, CONSTANTS)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= 5:
        raise ConfigError(f"severity must be an int from 0 to 5, got {severity!r}")
    if profile not in (None, "cifar", "imagenet"):
        raise ConfigError(f"profile must be 'cifar', 'imagenet' or None, got {profile!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if severity == 0:
        return image
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    a = to_float_array(image).astype(np.float64)
    profile = profile or ("cifar" if min(a.shape[:2]) <= 64 else "imagenet")
    out = _apply(a, name, _constant(name, int(severity), profile), rng)
    return _restore(out, image)


def _restore(out: np.ndarray, like: Any) -> Any:
    """Float (H, W, C) in [0, 1] -> the kind, shape and dtype of `like`."""
    if isinstance(like, Image.Image):
        if like.mode.startswith("I;16"):
            return Image.fromarray(np.round(out[..., 0] * 65535).astype(np.uint16))
        if out.shape[-1] == 1:
            return _to_pil_gray(out[..., 0])
        return Image.fromarray(np.clip(np.round(out * 255), 0, 255).astype(np.uint8))
    is_tensor = isinstance(like, torch.Tensor)
    ref = like.detach().cpu().numpy() if is_tensor else like
    channels_first = is_tensor and ref.ndim == 3
    C = ref.shape[0] if channels_first else (ref.shape[-1] if ref.ndim == 3 else 1)
    if C == 4:  # alpha was composited onto white; keep an opaque alpha channel
        out = np.concatenate([out if out.shape[-1] == 3 else np.repeat(out, 3, -1), np.ones_like(out[..., :1])], -1)
    elif C == 3 and out.shape[-1] == 1:
        out = np.repeat(out, 3, -1)
    if ref.ndim == 2:
        out = out[..., 0]
    elif channels_first:
        out = np.moveaxis(out, -1, 0)
    dtype = ref.dtype
    if dtype == np.uint8:
        res = np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
    elif dtype == np.uint16:
        res = np.clip(np.round(out * 65535), 0, 65535).astype(np.uint16)
    elif dtype == np.bool_:
        res = out >= 0.5
    elif np.issubdtype(dtype, np.floating):
        res = out.astype(dtype)
    elif np.issubdtype(dtype, np.integer):
        scale = 255 if ref.max(initial=0) <= 255 else 65535
        res = np.clip(np.round(out * scale), 0, scale).astype(dtype)
    else:
        raise InputError(f"unsupported image dtype {dtype}")
    return torch.from_numpy(np.ascontiguousarray(res)) if is_tensor else res

"""What decides the pixels besides the text: the font files (by content), the C libraries that shape and draw
them, and the renderer configuration. Record it beside a model; compare it when the model is used elsewhere.

    from renderers import environment, check_environment
    recorded = environment("pixel")                  # JSON-serialisable; store it with the model
    ...
    for line in check_environment(recorded):         # [] when this machine renders the same way
        warnings.warn(line)

PIXEL's users report accuracy shifting with fonts and library versions; a font file's name and size do not catch
a changed file, its sha256 does. HarfBuzz (shaping), FreeType (rasterising) and fontconfig (font selection) are
read from the libraries Pango loads; a version that cannot be read is recorded as null.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import os
from pathlib import Path
from typing import Any

from renderers.config import RenderConfig, RenderError, load_config

ENVIRONMENT_VERSION = 1
# Fields that do not change pixels (or whose effect is recorded through the font hashes).
_CONFIG_IGNORED = ("name", "description", "font_dirs")
_HASHES: dict[tuple[str, int, int], str] = {}


def font_sha256(path: str | os.PathLike) -> str:
    """sha256 of a font file, remembered per (path, size, mtime) within the process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def library_versions() -> dict[str, str | None]:
    """Versions of pango, cairo, harfbuzz, freetype and fontconfig as loaded by this process (None: unreadable)."""
    from renderers._backend import _native

    _, fc, _, _ = _native()  # raises an actionable RenderError when the bindings are missing
    import cairocffi
    import pangocffi

    out: dict[str, str | None] = {
        "pango": pangocffi.ffi.string(pangocffi.pango.pango_version_string()).decode(),
        "cairo": cairocffi.cairo_version_string(),
        "harfbuzz": None,
        "freetype": None,
        "fontconfig": None,
    }
    v = fc.FcGetVersion()
    out["fontconfig"] = f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    hb = _load(["harfbuzz", "libharfbuzz.so.0"])
    if hb is not None:
        hb.hb_version_string.restype = ctypes.c_char_p
        out["harfbuzz"] = hb.hb_version_string().decode()
    ft = _load(["freetype", "libfreetype.so.6"])
    if ft is not None:
        lib = ctypes.c_void_p()
        if ft.FT_Init_FreeType(ctypes.byref(lib)) == 0:
            v3 = [ctypes.c_int() for _ in range(3)]
            ft.FT_Library_Version(lib, *map(ctypes.byref, v3))
            ft.FT_Done_FreeType(lib)
            out["freetype"] = ".".join(str(x.value) for x in v3)
    return out


def environment(config: RenderConfig | str | os.PathLike = "pixel") -> dict[str, Any]:
    """Everything that decides the pixels of `config` on this machine, JSON-serialisable.

    Returns:
        `{"version": 1, "fonts": [{"file", "bytes", "sha256"}, ...] (in `config.fonts` order), "libraries":
        {"pango", "cairo", "harfbuzz", "freetype", "fontconfig"}, "config": config.to_dict()}`.
    Raises:
        FontError: a configured font file is missing. RenderError: the PangoCairo bindings are not installed.
    """
    cfg = load_config(config)
    fonts = [{"file": p.name, "bytes": p.stat().st_size, "sha256": font_sha256(p)} for p in cfg.font_paths()]
    return {"version": ENVIRONMENT_VERSION, "fonts": fonts, "libraries": library_versions(), "config": cfg.to_dict()}


def check_environment(recorded: dict[str, Any], config: RenderConfig | str | os.PathLike | None = None,
                      current: dict[str, Any] | None = None) -> list[str]:
    """Differences between a recorded `environment(...)` and this machine's, one readable line each.

    Args:
        recorded: what `environment` returned where the model was trained.
        config: the configuration rendering now; None: the one in `recorded`.
        current: this machine's environment when already computed (else computed here).
    Returns:
        [] when fonts (by sha256), library versions and pixel-deciding config fields all agree. A font file
        that cannot be found here is reported as a difference, not raised.
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("fonts"), list):
        raise RenderError(
            f"a recorded rendering environment must be the dict `renderers.environment()` returns, got "
            f"{type(recorded).__name__}" + (f" with keys {sorted(recorded)}" if isinstance(recorded, dict) else "")
        )
    if current is None:
        cfg = load_config(config) if config is not None else RenderConfig.from_dict(recorded["config"])
        try:
            current = environment(cfg)
        except RenderError as e:  # FontError included: report it as the difference it is
            return [f"cannot reproduce the recorded rendering environment here: {e}"]
    diffs = []
    old_fonts = {f.get("file"): f for f in recorded["fonts"]}
    new_fonts = {f["file"]: f for f in current["fonts"]}
    for name in sorted(set(old_fonts) | set(new_fonts), key=str):
        a, b = old_fonts.get(name), new_fonts.get(name)
        if a is None:
            diffs.append(f"font {name}: used here, not in the recorded environment")
        elif b is None:
            diffs.append(f"font {name}: recorded, not used here")
        elif a.get("sha256") != b["sha256"]:
            diffs.append(f"font {name}: sha256 {str(a.get('sha256'))[:12]}... ({a.get('bytes')} bytes) recorded, "
                         f"{b['sha256'][:12]}... ({b['bytes']} bytes) here")
    old_libs, new_libs = recorded.get("libraries", {}), current["libraries"]
    for lib in sorted(set(old_libs) | set(new_libs)):
        if old_libs.get(lib) != new_libs.get(lib):
            diffs.append(f"{lib}: {old_libs.get(lib)} recorded, {new_libs.get(lib)} here")
    old_cfg, new_cfg = recorded.get("config", {}), current["config"]
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if key not in _CONFIG_IGNORED and old_cfg.get(key) != new_cfg.get(key):
            diffs.append(f"config {key}: {old_cfg.get(key)!r} recorded, {new_cfg.get(key)!r} here")
    return diffs


def _load(names: list[str]) -> ctypes.CDLL | None:
    """The shared library Pango itself loads (same soname), or None."""
    for name in names:
        try:
            return ctypes.CDLL(ctypes.util.find_library(name) or name)
        except OSError:
            continue
    return None

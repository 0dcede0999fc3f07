"""PangoCairo through the cffi bindings (`pangocffi`, `pangocairocffi`, `cairocffi`), with a private font setup.

Determinism comes from three explicit choices:

* a private fontconfig configuration created empty (`FcConfigCreate`, no system configuration file is read) into
  which exactly the configured font files are registered (`FcConfigAppFontAddFile`), attached to a private
  PangoCairo font map (`pango_fc_font_map_set_config`): fonts installed on the system never take part;
* cairo font options (antialiasing, hinting) set on the Pango context, so surface or desktop defaults never apply;
* a fixed baseline computed from the primary font, so the vertical position does not depend on which fallback
  font a text happens to use.

The few C functions the bindings do not declare (fontconfig, `pango_fc_font_map_set_config`,
`pango_cairo_font_map_new_for_font_type`) are declared here in ABI mode. One backend is not thread-safe; use
one renderer per thread or process.
"""

from __future__ import annotations

import ctypes.util
import math
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from renderers._extents import Extents
from renderers.config import FontError, RenderConfig, RenderError

try:  # optional dependencies: fail when a renderer is built, with the command that fixes it
    import cairocffi
    import cffi
    import pangocairocffi
    import pangocffi

    _IMPORT_ERROR: Exception | None = None
except (ImportError, OSError) as e:  # OSError: the bindings are installed but the C libraries are not
    _IMPORT_ERROR = e

PANGO_SCALE = 1024
PANGO_DIRECTION_LTR, PANGO_DIRECTION_RTL = 0, 1

_OWN_CDEF = """
typedef struct _FcConfig FcConfig;
typedef struct _FcPattern FcPattern;
typedef struct _FcObjectSet FcObjectSet;
typedef struct { int nfont; int sfont; FcPattern **fonts; } FcFontSet;
FcConfig *FcConfigCreate(void);
int FcGetVersion(void);
int FcConfigAppFontAddFile(FcConfig *config, const unsigned char *file);
void FcConfigDestroy(FcConfig *config);
FcPattern *FcPatternCreate(void);
void FcPatternDestroy(FcPattern *p);
FcObjectSet *FcObjectSetCreate(void);
int FcObjectSetAdd(FcObjectSet *os, const char *object);
void FcObjectSetDestroy(FcObjectSet *os);
FcFontSet *FcFontList(FcConfig *config, FcPattern *p, FcObjectSet *os);
void FcFontSetDestroy(FcFontSet *s);
int FcPatternGetString(const FcPattern *p, const char *object, int n, unsigned char **s);
void pango_fc_font_map_set_config(void *fontmap, FcConfig *fcconfig);
void *pango_cairo_font_map_new_for_font_type(int fonttype);
"""

_NATIVE: dict[str, object] = {}


def _native() -> tuple[object, object, object, object]:
    """(own ffi, fontconfig lib, pangoft2 lib, pangocairo lib for the own declarations), loaded once."""
    if _IMPORT_ERROR is not None:
        raise RenderError(
            f"text rendering needs PangoCairo and its cffi bindings ({_IMPORT_ERROR}). Install them with "
            f"`pip install 'multiseq[render]'` (pangocffi, pangocairocffi, cairocffi) and the C libraries with "
            f"`apt-get install libpango-1.0-0 libpangocairo-1.0-0 libcairo2` (or run `make setup`)"
        )
    if not _NATIVE:
        ffi = cffi.FFI()
        ffi.cdef(_OWN_CDEF)
        _NATIVE["ffi"] = ffi
        _NATIVE["fc"] = _dlopen(ffi, ["fontconfig", "libfontconfig.so.1"])
        _NATIVE["pangoft2"] = _dlopen(ffi, ["pangoft2-1.0", "libpangoft2-1.0.so.0"])
        _NATIVE["pangocairo"] = _dlopen(ffi, ["pangocairo-1.0", "libpangocairo-1.0.so.0"])
    return _NATIVE["ffi"], _NATIVE["fc"], _NATIVE["pangoft2"], _NATIVE["pangocairo"]


def _dlopen(ffi: object, names: Sequence[str]) -> object:
    for name in names:
        path = ctypes.util.find_library(name) or name
        try:
            return ffi.dlopen(path)  # type: ignore[attr-defined]
        except OSError:
            continue
    raise RenderError(f"cannot load the C library {names[0]!r}; install Pango, Cairo and fontconfig")


def _cast(dst_ffi: object, ctype: str, ptr: object, src_ffi: object) -> object:
    """The same C pointer seen through another cffi instance (the bindings each have their own)."""
    return dst_ffi.cast(ctype, int(src_ffi.cast("uintptr_t", ptr)))  # type: ignore[attr-defined]


class PangoBackend:
    """A private font map, two Pango layouts (left-to-right and right-to-left base direction) and a strip surface.

    Args:
        config: the renderer configuration (fonts, size, surface geometry, font options).
    """

    def __init__(self, config: RenderConfig) -> None:
        ffi, fc, pangoft2, pangocairo_own = _native()
        self.config = config
        self.font_paths = config.font_paths()
        pango, pffi = pangocffi.pango, pangocffi.ffi
        pc, pcffi = pangocairocffi.pangocairo, pangocairocffi.ffi
        cairo_ffi = cairocffi.ffi

        fcconfig = fc.FcConfigCreate()
        for path in self.font_paths:
            if not fc.FcConfigAppFontAddFile(fcconfig, str(path).encode()):
                fc.FcConfigDestroy(fcconfig)
                raise FontError(f"fontconfig cannot read font file {path} (not a TrueType/OpenType font?)")
        available = _families(ffi, fc, fcconfig)
        missing = [f for f in config.families if f not in available]
        if missing:
            fc.FcConfigDestroy(fcconfig)
            raise FontError(
                f"font families {missing} are not provided by the registered font files "
                f"({', '.join(p.name for p in self.font_paths)}); they provide: {', '.join(sorted(available))}"
            )
        self.families = available
        fontmap = pangocairo_own.pango_cairo_font_map_new_for_font_type(cairocffi.FONT_TYPE_FT)
        if fontmap == ffi.NULL:
            fc.FcConfigDestroy(fcconfig)
            raise RenderError("this Pango build has no FreeType/fontconfig backend (PangoCairo FT font map)")
        pangoft2.pango_fc_font_map_set_config(fontmap, fcconfig)
        fc.FcConfigDestroy(fcconfig)  # the font map holds its own reference

        options = cairocffi.FontOptions()
        options.set_antialias(getattr(cairocffi, f"ANTIALIAS_{config.antialias.upper()}"))
        options.set_hint_style(getattr(cairocffi, f"HINT_STYLE_{config.hint_style.upper()}"))
        options.set_hint_metrics(getattr(cairocffi, f"HINT_METRICS_{config.hint_metrics.upper()}"))
        options.set_subpixel_order(cairocffi.SUBPIXEL_ORDER_DEFAULT)
        desc = pango.pango_font_description_from_string(b"Sans")
        pango.pango_font_description_set_family(desc, ",".join(config.families).encode())
        pango.pango_font_description_set_absolute_size(desc, config.font_px * PANGO_SCALE)

        self._contexts, self._layouts = [], []
        for direction in (PANGO_DIRECTION_LTR, PANGO_DIRECTION_RTL):
            ctx = pango.pango_font_map_create_context(_cast(pffi, "PangoFontMap *", fontmap, ffi))
            pc.pango_cairo_context_set_font_options(
                _cast(pcffi, "PangoContext *", ctx, pffi), _cast(pcffi, "cairo_font_options_t *", options._pointer, cairo_ffi)
            )
            pc.pango_cairo_context_set_resolution(_cast(pcffi, "PangoContext *", ctx, pffi), 72.0)
            pango.pango_context_set_base_dir(ctx, direction)
            layout = pango.pango_layout_new(ctx)
            pango.pango_layout_set_auto_dir(layout, False)
            pango.pango_layout_set_font_description(layout, desc)
            pango.pango_layout_set_single_paragraph_mode(layout, True)
            self._contexts.append(ctx)
            self._layouts.append(layout)
        pango.pango_font_description_free(desc)
        self._current: list[str | None] = [None, None]

        fmt = cairocffi.FORMAT_RGB24 if config.rgb else cairocffi.FORMAT_A8
        self.surface = cairocffi.ImageSurface(fmt, config.width, config.height)
        self.cr = cairocffi.Context(self.surface)
        self._cr_pc = _cast(pcffi, "cairo_t *", self.cr._pointer, cairo_ffi)
        # A numpy view of the surface's memory: (H, W) alpha for A8, (H, W, 4) BGRX for RGB24.
        stride = self.surface.get_stride()
        raw = np.frombuffer(self.surface.get_data(), dtype=np.uint8).reshape(config.height, stride)
        self._pixels = raw.reshape(config.height, stride // 4, 4)[:, : config.width] if config.rgb \
            else raw[:, : config.width]
        self._dirty = config.width
        self._layouts_pc = [_cast(pcffi, "PangoLayout *", lay, pffi) for lay in self._layouts]
        self._rect_ink, self._rect_log = pffi.new("PangoRectangle *"), pffi.new("PangoRectangle *")
        self._int_a, self._int_b = pffi.new("int *"), pffi.new("int *")
        self._finalizer = weakref.finalize(
            self, _release, list(self._layouts), list(self._contexts), _cast(pffi, "gpointer", fontmap, ffi)
        )

        # The fixed baseline: the primary font's line box centred in the strip, moved by y_offset.
        ref = self.measure("Hg", rtl=False)
        line_height = self._line_height()
        self.baseline_y = config.height / 2 - line_height / 2 + config.y_offset + ref.baseline

    def _line_height(self) -> float:
        pangocffi.pango.pango_layout_get_extents(self._layouts[0], self._rect_ink, self._rect_log)
        return self._rect_log.height / PANGO_SCALE

    def _set(self, text: str, rtl: bool) -> object:
        i = int(rtl)
        layout = self._layouts[i]
        if self._current[i] != text:
            data = text.encode("utf-8")
            pangocffi.pango.pango_layout_set_text(layout, data, len(data))
            self._current[i] = text
        return layout

    def measure(self, text: str, rtl: bool) -> Extents:
        """Lay out one line of text and return its extents."""
        pango = pangocffi.pango
        layout = self._set(text, rtl)
        pango.pango_layout_get_extents(layout, self._rect_ink, self._rect_log)
        log = self._rect_log
        return Extents(
            width=math.ceil(log.width / PANGO_SCALE) if text else 0,
            x=log.x / PANGO_SCALE,
            baseline=pango.pango_layout_get_baseline(layout) / PANGO_SCALE,
            unknown=pango.pango_layout_get_unknown_glyphs_count(layout),
        )

    def index_at(self, text: str, rtl: bool, x: float) -> int:
        """Character index (into `text`) of the character under column `x` px of its layout (hit test)."""
        pango = pangocffi.pango
        layout = self._set(text, rtl)
        index, trailing = self._int_a, self._int_b
        pango.pango_layout_xy_to_index(layout, int(x * PANGO_SCALE), 0, index, trailing)
        return len(text.encode("utf-8")[: index[0]].decode("utf-8", "ignore"))

    def clear(self) -> None:
        """Reset the columns drawn since the last clear to the background (white; transparent in A8)."""
        if self._dirty:
            self.surface.flush()
            self._pixels[:, : self._dirty] = 255 if self.config.rgb else 0
            self.surface.mark_dirty()
            self._dirty = 0

    def draw(self, text: str, rtl: bool, x: float, clip: tuple[int, int], ext: Extents | None = None,
             scale_x: float = 1.0) -> Extents:
        """Draw `text` with its logical left edge at `x` on the fixed baseline, clipped to columns `[clip)`.

        `ext`: the text's extents when already measured (saves a query). `scale_x`: horizontal scale of the
        drawing around `x` (heights and the baseline never change)."""
        if ext is None or self._current[int(rtl)] != text:
            ext = self.measure(text, rtl)
        cr = self.cr
        cr.reset_clip()
        cr.rectangle(clip[0], 0, clip[1] - clip[0], self.config.height)
        cr.clip()
        cr.set_source_rgb(0, 0, 0)
        if scale_x != 1.0:
            cr.save()
            cr.translate(x, 0)
            cr.scale(scale_x, 1.0)
            cr.move_to(-ext.x, self.baseline_y - ext.baseline)
            pangocairocffi.pangocairo.pango_cairo_show_layout(self._cr_pc, self._layouts_pc[int(rtl)])
            cr.restore()
        else:
            cr.move_to(x - ext.x, self.baseline_y - ext.baseline)
            pangocairocffi.pangocairo.pango_cairo_show_layout(self._cr_pc, self._layouts_pc[int(rtl)])
        self._dirty = max(self._dirty, clip[1])
        return ext

    def grab(self, start: int, stop: int) -> np.ndarray:
        """A copy of the surface's columns `[start, stop)` in its own format (for `paste`)."""
        self.surface.flush()
        return self._pixels[:, start:stop].copy()

    def paste(self, start: int, block: np.ndarray) -> None:
        """Write columns grabbed earlier (by `grab`) back at column `start`."""
        self.surface.flush()
        stop = start + block.shape[1]
        self._pixels[:, start:stop] = block
        self.surface.mark_dirty()
        self._dirty = max(self._dirty, stop)

    def read(self, columns: int | None = None) -> np.ndarray:
        """The strip as uint8, black text on white: `(H, W)` gray or `(H, W, 3)` RGB.

        Only the first `columns` columns are read from the surface (nothing is drawn beyond them); the rest is
        background."""
        self.surface.flush()
        cfg = self.config
        n = cfg.width if columns is None else min(columns, cfg.width)
        out = np.full((cfg.height, cfg.width, 3) if cfg.rgb else (cfg.height, cfg.width), 255, dtype=np.uint8)
        self._convert(0, n, out[:, :n])
        return out

    def block(self, start: int, stop: int) -> np.ndarray:
        """Columns `[start, stop)` as `read` gives them (uint8, black on white), a new array."""
        self.surface.flush()
        cfg = self.config
        out = np.empty((cfg.height, stop - start, 3) if cfg.rgb else (cfg.height, stop - start), dtype=np.uint8)
        self._convert(start, stop, out)
        return out

    def _convert(self, start: int, stop: int, out: np.ndarray) -> None:
        if self.config.rgb:
            out[...] = self._pixels[:, start:stop, 2::-1]  # BGRX -> RGB
        else:
            np.subtract(255, self._pixels[:, start:stop], out=out)


def _families(ffi: object, fc: object, fcconfig: object) -> set[str]:
    """Every family name (all languages' names) the registered files provide."""
    pattern, objects = fc.FcPatternCreate(), fc.FcObjectSetCreate()
    fc.FcObjectSetAdd(objects, b"family")
    fontset = fc.FcFontList(fcconfig, pattern, objects)
    names: set[str] = set()
    try:
        if fontset != ffi.NULL:
            out = ffi.new("unsigned char **")
            for i in range(fontset.nfont):
                n = 0
                while fc.FcPatternGetString(fontset.fonts[i], b"family", n, out) == 0:  # FcResultMatch
                    names.add(ffi.string(out[0]).decode("utf-8", "replace"))
                    n += 1
    finally:
        if fontset != ffi.NULL:
            fc.FcFontSetDestroy(fontset)
        fc.FcObjectSetDestroy(objects)
        fc.FcPatternDestroy(pattern)
    return names


def _release(layouts: list, contexts: list, fontmap: object) -> None:
    gobject = pangocffi.gobject
    for obj in (*layouts, *contexts, fontmap):
        gobject.g_object_unref(obj)


def file_fingerprint(paths: Sequence[Path]) -> list[tuple[str, int]]:
    """(name, size in bytes) of each font file: a cheap record of what rendered the pixels."""
    return [(p.name, p.stat().st_size) for p in paths]

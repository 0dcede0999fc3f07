"""Renderer configuration: a frozen dataclass read from `renderers/configs/<name>.json` or any JSON file.

The default configuration, `pixel`, is PIXEL's geometry: 8 pt at 120 dpi (13.33 px), a strip 16 px high made of
529 patches of 16x16 (8,464 px), text from x = 2 px, grayscale. Fonts are font *files*, found by name in
`font_dirs` (or given as absolute paths) and registered one by one in a private fontconfig configuration, so the
system's own font setup never takes part in rendering.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
FONT_DIRS_ENV = "RENDERERS_FONT_DIRS"

ANTIALIAS = ("gray", "none", "fast", "good", "best")
HINT_STYLES = ("none", "slight", "medium", "full")
HINT_METRICS = ("off", "on")


class RenderError(ValueError):
    """Text or configuration that cannot be rendered; the message says what was wrong and what is valid."""


class FontError(RenderError):
    """A font file is missing, unreadable, or a configured family is not provided by the registered files."""


@dataclass(frozen=True)
class RenderConfig:
    """Everything that decides the pixels.

    Attributes:
        name: configuration name (informational).
        description: free text.
        font_size: size in points; the pixel size is `font_size * dpi / 72`.
        dpi: resolution used to turn points into pixels.
        pixels_per_patch: side P of a square patch and height of the strip.
        max_seq_length: patches in the strip, the end patch included; the strip is `P x (P * max_seq_length)`.
        text_x: left margin of text inside its first patch, in px (also the right margin before the black patch).
        y_offset: PIXEL's vertical nudge: the primary font's line box is centred in the strip, then moved by this.
        rgb: render `(H, W, 3)` instead of `(H, W)`.
        fonts: font files, by file name (searched in `font_dirs`) or absolute path. `.ttc` collections register
            every face.
        families: the fallback chain, in order; each must be provided by `fonts`. Characters no family covers
            fall back to any registered face that has them, and count as missing glyphs when none has.
        font_dirs: folders searched for `fonts` given by name. The environment variable `RENDERERS_FONT_DIRS`
            (os.pathsep-separated) is searched first when set.
        antialias, hint_style, hint_metrics: cairo font options, set explicitly so the system's defaults never
            apply.
    """

    name: str = "pixel"
    description: str = ""
    font_size: float = 8.0
    dpi: float = 120.0
    pixels_per_patch: int = 16
    max_seq_length: int = 529
    text_x: int = 2
    y_offset: float = -2.0
    rgb: bool = False
    fonts: tuple[str, ...] = ("NotoSans-Regular.ttf",)
    families: tuple[str, ...] = ("Noto Sans",)
    font_dirs: tuple[str, ...] = ("/usr/share/fonts/truetype/noto", "/usr/share/fonts/opentype/noto")
    antialias: str = "gray"
    hint_style: str = "none"
    hint_metrics: str = "off"

    def __post_init__(self) -> None:
        for name in ("fonts", "families", "font_dirs"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Raise `RenderError` on any inconsistent field."""
        _check(_is_pos_number(self.font_size), f"font_size must be a positive number (points), got {self.font_size!r}")
        _check(_is_pos_number(self.dpi), f"dpi must be a positive number, got {self.dpi!r}")
        _check(_is_int(self.pixels_per_patch) and self.pixels_per_patch >= 4,
               f"pixels_per_patch must be an int >= 4, got {self.pixels_per_patch!r}")
        _check(_is_int(self.max_seq_length) and self.max_seq_length >= 2,
               f"max_seq_length must be an int >= 2 (text patches plus the end patch), got {self.max_seq_length!r}")
        _check(_is_int(self.text_x) and 0 <= self.text_x < self.pixels_per_patch,
               f"text_x must be an int in [0, pixels_per_patch), got {self.text_x!r}")
        _check(isinstance(self.y_offset, (int, float)) and not isinstance(self.y_offset, bool),
               f"y_offset must be a number, got {self.y_offset!r}")
        _check(isinstance(self.rgb, bool), f"rgb must be true or false, got {self.rgb!r}")
        _check(len(self.fonts) >= 1 and all(isinstance(f, str) and f for f in self.fonts),
               "fonts must list at least one font file")
        _check(len(self.families) >= 1 and all(isinstance(f, str) and f and "," not in f for f in self.families),
               "families must list at least one family name (without commas)")
        _check(all(isinstance(d, str) for d in self.font_dirs), "font_dirs must be a list of folder paths")
        _check(self.antialias in ANTIALIAS, f"antialias must be one of {ANTIALIAS}, got {self.antialias!r}")
        _check(self.hint_style in HINT_STYLES, f"hint_style must be one of {HINT_STYLES}, got {self.hint_style!r}")
        _check(self.hint_metrics in HINT_METRICS,
               f"hint_metrics must be one of {HINT_METRICS}, got {self.hint_metrics!r}")

    @property
    def font_px(self) -> float:
        """Font size in pixels (8 pt at 120 dpi = 13.33 px)."""
        return self.font_size * self.dpi / 72.0

    @property
    def height(self) -> int:
        return self.pixels_per_patch

    @property
    def width(self) -> int:
        """Strip width in px: `pixels_per_patch * max_seq_length`."""
        return self.pixels_per_patch * self.max_seq_length

    @property
    def patch_features(self) -> int:
        """Values per flattened patch: `P * P` (gray) or `P * P * 3` (RGB)."""
        return self.pixels_per_patch**2 * (3 if self.rgb else 1)

    def replace(self, **overrides: Any) -> RenderConfig:
        """A copy with fields replaced; unknown names raise `RenderError` with near matches."""
        _check_keys(overrides, "renderer config overrides")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("fonts", "families", "font_dirs"):
            d[key] = list(d[key])
        return d

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RenderConfig:
        if not isinstance(data, dict):
            raise RenderError(f"a renderer config must be a JSON object, got {type(data).__name__}")
        _check_keys(data, "renderer config")
        try:
            return cls(**data)
        except TypeError as e:
            raise RenderError(f"invalid renderer config: {e}") from None

    def search_dirs(self) -> list[Path]:
        """Folders searched for fonts given by name: `$RENDERERS_FONT_DIRS` first, then `font_dirs`."""
        env = [p for p in os.environ.get(FONT_DIRS_ENV, "").split(os.pathsep) if p]
        return [Path(p).expanduser() for p in (*env, *self.font_dirs)]

    def font_paths(self) -> list[Path]:
        """Resolve every entry of `fonts` to an existing file; a missing one raises `FontError`."""
        dirs = self.search_dirs()
        out = []
        for font in self.fonts:
            p = Path(font).expanduser()
            candidates = [p] if p.is_absolute() else [d / font for d in dirs]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                where = str(p) if p.is_absolute() else f"{font!r} in {', '.join(map(str, dirs)) or '(no folders)'}"
                raise FontError(
                    f"font file not found: {where}. On Debian/Ubuntu the default fonts come from "
                    f"`apt-get install fonts-noto-core fonts-noto-cjk`; otherwise point font_dirs (or "
                    f"${FONT_DIRS_ENV}) at a folder holding them, or give absolute paths in fonts"
                )
            out.append(found.resolve())
        return out


def list_configs() -> list[str]:
    """Names of the bundled configurations (`renderers/configs/*.json`)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str | os.PathLike | RenderConfig = "pixel", **overrides: Any) -> RenderConfig:
    """A bundled configuration by name (`"pixel"`), a JSON file by path, or a `RenderConfig`; then overrides."""
    if isinstance(name_or_path, RenderConfig):
        config = name_or_path
    else:
        text_name = os.fspath(name_or_path)
        path = Path(text_name)
        if path.suffix != ".json" and os.sep not in text_name:
            path = CONFIG_DIR / f"{text_name}.json"
            if not path.is_file():
                near = difflib.get_close_matches(text_name, list_configs(), n=3, cutoff=0.4)
                hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
                raise RenderError(
                    f"unknown renderer config {text_name!r}.{hint} Bundled: {', '.join(list_configs())}; "
                    f"or give the path of a JSON file"
                )
        if not path.is_file():
            raise RenderError(f"renderer config file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RenderError(f"renderer config {path} is not valid JSON: {e}") from None
        config = RenderConfig.from_dict(data)
    return config.replace(**overrides) if overrides else config


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise RenderError(message)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pos_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and v == v and v != float("inf")


def _check_keys(data: dict[str, Any], where: str) -> None:
    known = {f.name for f in fields(RenderConfig)}
    for key in data:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            raise RenderError(f"unknown key {key!r} in {where}.{hint} Valid keys: {', '.join(sorted(known))}")

"""The measurement record shared by the backend and the layout code (kept apart so `import renderers` stays
free of the C bindings, which load on first render)."""

from __future__ import annotations

from typing import NamedTuple


class Extents(NamedTuple):
    """Logical extents of a laid-out text in px: `width` (rounded up), `x` (left of the logical box), `baseline`
    (from the top of the layout), and `unknown` (glyphs no registered font has)."""

    width: int
    x: float
    baseline: float
    unknown: int


EMPTY = Extents(0, 0.0, 0.0, 0)

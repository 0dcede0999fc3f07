"""Grapheme clusters (Unicode UAX #29 extended grapheme clusters): what a reader takes as one character.

A base letter with its combining marks, an emoji ZWJ sequence, a flag (two regional indicators), a Hangul syllable
written as conjoining jamo and a CR LF pair are each one cluster. The segmentation is the `regex` module's `\\X`
(installed with `pip install 'multiseq[render]'`); it is imported on first use so `import renderers` never needs it.
"""

from __future__ import annotations

from itertools import islice

from renderers.config import RenderError

_PATTERN = None


def _pattern():
    global _PATTERN
    if _PATTERN is None:
        try:
            import regex
        except ImportError as e:
            raise RenderError(
                f"bigram rendering splits text into grapheme clusters with the `regex` module ({e}); install it "
                f"with `pip install 'multiseq[render]'` (or `pip install regex`)"
            ) from None
        _PATTERN = regex.compile(r"\X")
    return _PATTERN


def graphemes(text: str, limit: int | None = None) -> list[str]:
    """The grapheme clusters of `text`, in logical order; at most `limit` of them (the rest is not scanned)."""
    it = (m.group() for m in _pattern().finditer(text))
    return list(it if limit is None else islice(it, limit))

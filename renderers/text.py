"""Text -> a strip of patches, PIXEL style.

Geometry (the `pixel` configuration): a strip `P x (P * N)` with P = 16 and N = 529 patches. A text starts at
x = `text_x` (2 px) inside its first patch; right after it comes an all-black P x P patch:

    end = min(ceil((text_x + width + text_x) / P), N - 1)     (in patches)
    num_text_patches = end,   mask = the text patches plus the end patch

Three input forms:

* `str`: one text. Newlines and tabs become spaces; other control characters are removed. Too long a text is cut
  at a character (grapheme) boundary so that it fits before the last patch.
* `(str, str)`: a pair: text a, a black separator patch, text b, the black end patch. When both do not fit, the
  longer one is cut first.
* `list[str]`: words: each word (drawn with a trailing space) starts at a patch boundary; `word_starts` gives the
  first patch of every word drawn. Words that do not fit are dropped (a first word that alone is too long is cut).

Three renderings (`rendering=`, for a `str` or a pair; a list of words is always drawn word by word):

* `continuous` (PIXEL): the text as one run, as above.
* `words`: the text split on whitespace and drawn as a list of words (a blank text is drawn as it is).
* `bigrams` (Lotz et al., 2023): patch i holds grapheme clusters 2i and 2i+1 (`renderers._graphemes`: a letter
  with its combining marks, an emoji ZWJ sequence, a flag, a Hangul syllable are one character; a space is a
  character like any other). No margins: the first patch holds the first two characters, the black end patch
  follows the last one; an odd count leaves the last patch with one character. Each patch is drawn on its own:
  the pair is shaped alone (no ligature, kerning or Arabic joining across patches), centred horizontally by its
  logical width (so "a " and " a" differ, as they should), on the same fixed baseline as `continuous`. A pair
  wider than the patch (every CJK pair: two 13.3 px ideographs are 26 px; 5-25% of pairs in alphabetic scripts,
  "mm", "ж ", Devanagari clusters) is squeezed horizontally to the patch width, height and baseline unchanged,
  instead of clipped (clipping would cut a third of each ideograph). Right-to-left text: the patches stay in
  logical order from left to right (the first two characters in patch 0), and each pair is laid out with a
  right-to-left base direction, so within a patch the first character is on the right. Too long a text keeps its
  first `2 * (N - 1)` characters (`truncated` set); a pair shares `N - 2` patches, the longer text cut first.
  Rendered patches are kept in a bounded LRU cache (`bigram_cache_size`, default `BIGRAM_CACHE_SIZE`); a patch
  depends only on its two characters and the text's direction, so cached and fresh pixels are identical.

Right-to-left text (a majority vote over the first, middle and last letters of each text, by their Unicode bidi
class) is laid out with a right-to-left base direction and right-aligned in its patches: its logical right edge
sits `text_x` px before the black patch that follows it.
"""

from __future__ import annotations

import math
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from renderers._extents import EMPTY as _EMPTY
from renderers._extents import Extents
from renderers._graphemes import graphemes
from renderers.config import RenderConfig, RenderError, load_config

_NEWLINES = {c: " " for c in "\n\r\t\v\f\x85\u2028\u2029"}
_CONTROL = {c: None for c in map(chr, [*range(0x00, 0x20), *range(0x7F, 0xA0)]) if c not in _NEWLINES}
_TRANSLATE = str.maketrans({**_NEWLINES, **_CONTROL})
_JOINERS = {"\u200c", "\u200d", "\u034f"}


@dataclass
class RenderResult:
    """One rendered input.

    Attributes:
        pixels: uint8 `(P, P * N)` (gray) or `(P, P * N, 3)` (RGB), black text on white (255).
        num_text_patches: patches before the black end patch (text, and for pairs the separator too).
        mask: bool `(N,)`, True on the `num_text_patches + 1` first patches (text plus end patch).
        missing_glyphs: characters drawn as a missing-glyph box because no registered font has them.
        sep_patches: index of the separator patch (pairs), else empty.
        word_starts: first patch of every word drawn (word mode), else None.
        truncated: whether some text did not fit and was left out.
        text: what was drawn, after clean-up and truncation (a str, a pair, or a list of words).
    """

    pixels: np.ndarray
    num_text_patches: int
    mask: np.ndarray
    missing_glyphs: int = 0
    sep_patches: list[int] = field(default_factory=list)
    word_starts: list[int] | None = None
    truncated: bool = False
    text: Any = ""

    @property
    def end_patch(self) -> int:
        """Index of the black end patch (= `num_text_patches`)."""
        return self.num_text_patches


WORD_CACHE_SIZE = 20_000  # words whose pixels a renderer keeps (a few KB each)
BIGRAM_CACHE_SIZE = 50_000  # bigram patches a renderer keeps (256 bytes each in gray, 768 in RGB)
RENDERINGS = ("continuous", "words", "bigrams")


@dataclass(frozen=True)
class _Cell:
    pixels: np.ndarray  # (P, P[, 3]) uint8, black on white, as in `RenderResult.pixels`
    unknown: int  # glyphs the fonts could not draw


@dataclass(frozen=True)
class _CachedWord:
    width: int  # px, the word with its trailing space
    patches: int
    unknown: int  # glyphs the fonts could not draw
    pixels: np.ndarray  # the backend's columns for the word's patches


class TextRenderer:
    """PangoCairo renderer with an explicit, private font setup. Build with `TextRenderer.from_config("pixel")`.

    Pickleable (the state is the configuration; fonts are loaded again, lazily, in the receiving process), so it
    works inside DataLoader workers. Not thread-safe: one renderer per thread.

    Args:
        config: a `RenderConfig`.
        errors: what to do with lone surrogates (text that is not valid Unicode): `strict` raises `RenderError`
            naming the position, `replace` draws U+FFFD.
        rendering: how `render` draws a `str` or a pair unless told otherwise: one of `RENDERINGS`
            (`continuous`, `words`, `bigrams`; see the module docstring).
        bigram_cache_size: bigram patches kept (least recently used dropped first); 0 turns the cache off.
    """

    def __init__(self, config: RenderConfig | None = None, errors: str = "strict", rendering: str = "continuous",
                 bigram_cache_size: int = BIGRAM_CACHE_SIZE) -> None:
        if errors not in ("strict", "replace"):
            raise RenderError(f"errors must be 'strict' or 'replace', got {errors!r}")
        _check_rendering(rendering)
        if not isinstance(bigram_cache_size, int) or isinstance(bigram_cache_size, bool) or bigram_cache_size < 0:
            raise RenderError(f"bigram_cache_size must be an int >= 0 (0: no cache), got {bigram_cache_size!r}")
        self.config = config if config is not None else load_config("pixel")
        self.errors = errors
        self.rendering = rendering
        self.bigram_cache_size = bigram_cache_size
        self._backend = None
        self._pid = None
        self._word_cache: dict[str, _CachedWord] = {}
        self._bigram_cache: dict[tuple[str, bool], _Cell] = {}

    @classmethod
    def from_config(cls, name_or_path: Any = "pixel", errors: str = "strict", rendering: str = "continuous",
                    **overrides: Any) -> TextRenderer:
        """A renderer from a bundled configuration name, a JSON path or a `RenderConfig`, with field overrides."""
        return cls(load_config(name_or_path, **overrides), errors=errors, rendering=rendering)

    # -- plumbing -------------------------------------------------------------------------------------------------
    @property
    def backend(self):
        """The PangoCairo state, built on first use in each process (forked children build their own)."""
        if self._backend is None or self._pid != os.getpid():
            from renderers._backend import PangoBackend

            self._backend = PangoBackend(self.config)
            self._pid = os.getpid()
            self._word_cache = {}
            self._bigram_cache = {}
        return self._backend

    def environment(self) -> dict[str, Any]:
        """What decides this renderer's pixels (font hashes, library versions, config): `renderers.environment`."""
        from renderers.environment import environment

        return environment(self.config)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "errors": self.errors, "rendering": self.rendering,
                "bigram_cache_size": self.bigram_cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(RenderConfig.from_dict(state["config"]), errors=state["errors"],
                      rendering=state.get("rendering", "continuous"),
                      bigram_cache_size=state.get("bigram_cache_size", BIGRAM_CACHE_SIZE))

    def __repr__(self) -> str:
        c = self.config
        return (f"TextRenderer({c.name!r}: {c.font_size:g} pt at {c.dpi:g} dpi, {c.max_seq_length} patches of "
                f"{c.pixels_per_patch}x{c.pixels_per_patch}, {'rgb' if c.rgb else 'gray'}, {self.rendering})")

    @property
    def num_patches(self) -> int:
        return self.config.max_seq_length

    # -- text clean-up ----------------------------------------------------------------------------------------------
    def clean(self, text: Any) -> str:
        """Newlines/tabs -> spaces, other control characters removed, lone surrogates refused or replaced."""
        if not isinstance(text, str):
            raise RenderError(f"text must be str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            if self.errors == "strict":
                raise RenderError(
                    f"text is not valid Unicode at position {e.start} ({text[e.start:e.end]!r}: {e.reason}); "
                    f"fix the text or build the renderer with errors='replace'"
                ) from None
            text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
        return text.translate(_TRANSLATE)

    # -- rendering ----------------------------------------------------------------------------------------------------
    def render(self, text: str | tuple[str, str] | Sequence[str], rendering: str | None = None) -> RenderResult:
        """Render one input: a text, a `(text_a, text_b)` pair, or a list of words. See the module docstring.

        Args:
            rendering: `continuous`, `words` or `bigrams` for a `str` or a pair; None: the renderer's own.
        """
        mode = self.rendering if rendering is None else _check_rendering(rendering)
        if isinstance(text, str):
            segments = [self.clean(text)]
        elif isinstance(text, tuple):
            if len(text) != 2:
                raise RenderError(f"a pair must be a tuple of two texts, got a tuple of {len(text)}")
            segments = [self.clean(text[0]), self.clean(text[1])]
        elif isinstance(text, list):
            return self._render_words([self.clean(w) for w in text])
        else:
            raise RenderError(
                f"render() takes a str, a (str, str) pair or a list of words (str); got {type(text).__name__}"
            )
        if mode == "bigrams":
            return self._render_bigrams(segments)
        if mode == "words" and len(segments) == 1 and segments[0].split():
            return self._render_words(segments[0].split())
        return self._render_segments(segments)

    def __call__(self, text: Any, rendering: str | None = None) -> RenderResult:
        return self.render(text, rendering)

    def render_batch(self, texts: Sequence[Any], rendering: str | None = None) -> list[RenderResult]:
        return [self.render(t, rendering) for t in texts]

    def _span(self, width: int) -> int:
        """Patches a piece of text `width` px wide occupies, margins included (0 for nothing)."""
        if width <= 0:
            return 0
        return math.ceil((2 * self.config.text_x + width) / self.config.pixels_per_patch)

    def _render_segments(self, segments: list[str]) -> RenderResult:
        cfg, be = self.config, self.backend
        P, tx = cfg.pixels_per_patch, cfg.text_x
        rtl = [is_rtl(s) for s in segments]
        budget = cfg.max_seq_length - len(segments)  # one black patch after each segment
        fitted = [self._fit(s, r, budget * P - 2 * tx) for s, r in zip(segments, rtl)]
        # A segment that was cut needs more than the whole budget: count it as one patch more.
        spans = [self._span(e.width) + int(cut) for _, e, cut in fitted]
        limits = _share(spans, budget)
        truncated = any(cut for _, _, cut in fitted)
        for i, (s, r) in enumerate(zip(segments, rtl)):
            if self._span(fitted[i][1].width) > limits[i]:
                fitted[i] = self._fit(s, r, limits[i] * P - 2 * tx)
                truncated = True
        be.clear()
        start, missing, blacks = 0, 0, []
        for (s, e, _), r in zip(fitted, rtl):
            n = self._span(e.width)
            if n:
                x = (start + n) * P - tx - e.width if r else start * P + tx
                missing += be.draw(s, r, x, (start * P, (start + n) * P), e).unknown
            start += n
            blacks.append(start)
            start += 1
        drawn = [s for s, _, _ in fitted]
        return self._finish(blacks, missing, truncated, drawn[0] if len(drawn) == 1 else tuple(drawn))

    def _render_words(self, words: list[str]) -> RenderResult:
        """Each word from a patch boundary. A word's pixels depend only on the word (it is drawn at the same offset
        in its own patches, clipped to them), so whole words are drawn once and then copied from a bounded cache."""
        cfg, be = self.config, self.backend
        P, last = cfg.pixels_per_patch, cfg.max_seq_length - 1
        be.clear()
        start, starts, drawn, missing, truncated = 0, [], [], 0, False
        for i, word in enumerate(words):
            limit = (last - start) * P - 2 * cfg.text_x
            cached = self._word_cache.get(word)
            if cached is not None and cached.width <= limit:
                n = cached.patches
                if n:
                    be.paste(start * P, cached.pixels)
                missing += cached.unknown
                starts.append(start)
                drawn.append(word)
                start += n
                continue
            piece = word + " "
            r = is_rtl(word)
            # The word's right margin doubles as PIXEL's +2 px after the last word.
            piece, e, cut = self._fit(piece, r, limit)
            w, n = e.width, self._span(e.width)
            if cut and (i > 0 or not piece.strip()):
                truncated = True
                break
            truncated = truncated or cut
            x = (start + n) * P - cfg.text_x - w if r else start * P + cfg.text_x
            unknown = be.draw(piece, r, x, (start * P, (start + n) * P), e).unknown
            missing += unknown
            if not cut:
                self._remember(word, _CachedWord(w, n, unknown, be.grab(start * P, (start + n) * P)))
            starts.append(start)
            drawn.append(word if piece == word + " " else piece)
            start += n
        result = self._finish([start], missing, truncated, drawn)
        result.word_starts = starts
        return result

    def _render_bigrams(self, segments: list[str]) -> RenderResult:
        """Two grapheme clusters per patch, each patch drawn alone (see the module docstring)."""
        cfg = self.config
        P = cfg.pixels_per_patch
        budget = cfg.max_seq_length - len(segments)  # one black patch after each segment
        # 2 * budget + 1 clusters tell whether a text overflows without segmenting all of a long one.
        chars = [graphemes(s, 2 * budget + 1) for s in segments]
        limits = _share([(len(c) + 1) // 2 for c in chars], budget)
        shape = (P, cfg.width, 3) if cfg.rgb else (P, cfg.width)
        pixels = np.full(shape, 255, dtype=np.uint8)
        start, missing, blacks, drawn, truncated = 0, 0, [], [], False
        for s, c, limit in zip(segments, chars, limits):
            kept = c[: 2 * limit]
            truncated = truncated or len(kept) < len(c)
            rtl = is_rtl(s)
            for i in range(0, len(kept), 2):
                cell = self._bigram("".join(kept[i : i + 2]), rtl)
                pixels[:, start * P : (start + 1) * P] = cell.pixels
                missing += cell.unknown
                start += 1
            pixels[:, start * P : (start + 1) * P] = 0
            blacks.append(start)
            start += 1
            drawn.append("".join(kept))
        return self._result(pixels, blacks, missing, truncated, drawn[0] if len(drawn) == 1 else tuple(drawn))

    def _bigram(self, pair: str, rtl: bool) -> _Cell:
        """The patch of one bigram: from the LRU cache, or drawn in the strip's first patch and copied out."""
        key = (pair, rtl)
        cache = self._bigram_cache
        cell = cache.pop(key, None)
        if cell is not None:
            cache[key] = cell  # most recently used last
            return cell
        be, P = self.backend, self.config.pixels_per_patch
        be.clear()
        e = be.measure(pair, rtl)
        scale = min(1.0, P / e.width) if e.width else 1.0
        be.draw(pair, rtl, (P - e.width * scale) / 2, (0, P), e, scale_x=scale)
        cell = _Cell(be.block(0, P), e.unknown)
        if self.bigram_cache_size:
            cache = self._bigram_cache  # the backend may have been rebuilt (fork) with a fresh cache
            if len(cache) >= self.bigram_cache_size:
                cache.pop(next(iter(cache)))  # least recently used
            cache[key] = cell
        return cell

    def _remember(self, word: str, entry: _CachedWord) -> None:
        if len(self._word_cache) >= WORD_CACHE_SIZE:
            self._word_cache.pop(next(iter(self._word_cache)))  # oldest first
        self._word_cache[word] = entry

    def _finish(self, blacks: list[int], missing: int, truncated: bool, text: Any) -> RenderResult:
        P = self.config.pixels_per_patch
        pixels = self.backend.read(blacks[-1] * P)
        for b in blacks:
            pixels[:, b * P : (b + 1) * P] = 0
        return self._result(pixels, blacks, missing, truncated, text)

    def _result(self, pixels: np.ndarray, blacks: list[int], missing: int, truncated: bool, text: Any
                ) -> RenderResult:
        cfg = self.config
        end = blacks[-1]
        mask = np.zeros(cfg.max_seq_length, dtype=bool)
        mask[: end + 1] = True
        return RenderResult(
            pixels=pixels,
            num_text_patches=end,
            mask=mask,
            missing_glyphs=missing,
            sep_patches=blacks[:-1],
            truncated=truncated,
            text=text,
        )

    def _fit(self, text: str, rtl: bool, limit: int) -> tuple[str, Extents, bool]:
        """Longest prefix of `text` (cut at a grapheme boundary) at most `limit` px wide: (prefix, extents, cut).

        A prefix of a long text is laid out first and doubled only while it fits, so 1 MB of text costs a few
        layouts of about the strip's length. The cut is then found by a hit test at `limit` on that layout,
        checked (the prefix fits, one more character does not) and corrected by galloping and bisection when
        shaping or mixed directions make the hit test inexact.
        """
        be = self.backend
        seen: dict[int, Extents] = {}

        def ext(n: int) -> Extents:
            if n not in seen:
                seen[n] = be.measure(text[:n], rtl) if n else _EMPTY
            return seen[n]

        if not text:
            return "", _EMPTY, False
        lo, hi = 0, 0  # lo: a prefix length known to fit; hi: one known not to
        probe = min(len(text), max(64, limit // 2))
        while not hi:
            if ext(probe).width <= limit:
                if probe == len(text):
                    return text, ext(probe), False
                lo, probe = probe, min(len(text), probe * 2)
            else:
                hi = probe
        w_hi = ext(hi).width
        guess = be.index_at(text[:hi], rtl, w_hi - limit if rtl else limit)
        guess = min(max(guess, lo + 1), hi - 1)
        step = 1
        if lo < guess < hi:
            # Gallop from the guess toward the boundary, in whichever direction it lies.
            if ext(guess).width <= limit:
                lo = guess
                while lo + step < hi and ext(lo + step).width <= limit:
                    lo, step = lo + step, step * 2
                hi = min(hi, lo + step)
            else:
                hi = guess
                while hi - step > lo and ext(hi - step).width > limit:
                    hi, step = hi - step, step * 2
                lo = max(lo, hi - step)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ext(mid).width <= limit:
                lo = mid
            else:
                hi = mid
        n = _grapheme_floor(text, lo)
        return text[:n], ext(n), True


def _check_rendering(rendering: Any) -> str:
    if rendering not in RENDERINGS:
        raise RenderError(f"rendering must be one of {RENDERINGS}, got {rendering!r}")
    return rendering


def _share(spans: list[int], budget: int) -> list[int]:
    """Patch budgets per segment: as needed when all fit; else the longest is cut first, a patch at a time
    (ties: the later segment gives). Spans are first capped at `budget + 1`, so this loop is short."""
    limits = [min(s, budget + 1) for s in spans]
    while sum(limits) > budget:
        i = max(range(len(limits)), key=lambda k: (limits[k], k))
        limits[i] -= 1
    return limits


def _grapheme_floor(text: str, n: int) -> int:
    """Move a cut position left until it does not split a base character from its marks or a joined sequence."""
    while 0 < n < len(text):
        c, prev = text[n], text[n - 1]
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Mc", "Me") or c in _JOINERS \
                or prev in _JOINERS or "\ufe00" <= c <= "\ufe0f" or 0xE0100 <= ord(c) <= 0xE01EF:
            n -= 1
        else:
            break
    return n


def is_rtl(text: str) -> bool:
    """Majority vote of the Unicode bidi class of three letters: the first, the one nearest the middle of the
    text, and the last (whitespace, punctuation, symbols and digits are skipped). Right-to-left when at least
    two of the three are R or AL."""
    if text.isascii():
        return False
    n = len(text)
    first = next((i for i in range(n) if _is_letter(text[i])), None)
    if first is None:
        return False
    last = next(i for i in range(n - 1, -1, -1) if _is_letter(text[i]))
    mid = n // 2
    middle = next((j for k in range(n) for j in (mid + k, mid - k) if 0 <= j < n and _is_letter(text[j])), first)
    return sum(unicodedata.bidirectional(text[i]) in ("R", "AL") for i in (first, middle, last)) >= 2


def _is_letter(c: str) -> bool:
    return not (c.isspace() or c.isdigit() or unicodedata.category(c)[0] in "PSZC")


def squarify(pixels: np.ndarray, pixels_per_patch: int = 16) -> np.ndarray:
    """Strip `(P, P * N)` (or `(P, P * N, C)`) with N = n * n -> square image `(n * P, n * P[, C])`, the strip's
    patches laid row by row (patch i goes to row i // n, column i % n). 529 patches of 16 give 368 x 368."""
    P = pixels_per_patch
    if pixels.ndim not in (2, 3) or pixels.shape[0] != P or pixels.shape[1] % P:
        raise RenderError(f"expected a strip ({P}, {P}*N[, C]), got shape {pixels.shape}")
    N = pixels.shape[1] // P
    n = math.isqrt(N)
    if n * n != N:
        raise RenderError(f"a strip of {N} patches cannot be squarified: {N} is not a square number")
    rest = pixels.shape[2:]
    # (P, n*n*P, C) -> (n, P, n, P, C): rows of n patches, then stack rows vertically.
    blocks = pixels.reshape(P, n, n, P, *rest).transpose(1, 0, 2, 3, *range(4, 4 + len(rest)))
    return blocks.reshape(n * P, n * P, *rest)


def unsquarify(image: np.ndarray, pixels_per_patch: int = 16) -> np.ndarray:
    """Inverse of `squarify`: `(n * P, n * P[, C])` -> `(P, P * n * n[, C])`."""
    P = pixels_per_patch
    if image.ndim not in (2, 3) or image.shape[0] != image.shape[1] or image.shape[0] % P:
        raise RenderError(f"expected a square image with sides a multiple of {P}, got shape {image.shape}")
    n = image.shape[0] // P
    rest = image.shape[2:]
    blocks = image.reshape(n, P, n, P, *rest).transpose(1, 0, 2, 3, *range(4, 4 + len(rest)))
    return blocks.reshape(P, n * n * P, *rest)

"""Golden tests of the text renderer: geometry, scripts, right-to-left, pairs, words, determinism.

Truths used: the PIXEL geometry formulas (spec 4.1), the ink measured on the returned pixels, Unicode data,
and renders of the parts of an input on their own (a pair or a word list must equal its parts, placed at
patch boundaries)."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from renderers import RenderConfig, TextRenderer, is_rtl, load_config, squarify, unsquarify

P, N = 16, 529

SCRIPTS = {
    "latin": "Quick brown fox, naïve café, Øresund, Łódź",
    "cyrillic": "Съешь же ещё этих мягких французских булок",
    "greek": "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία",
    "arabic": "نص عربي قصير للتجربة",
    "hebrew": "עברית נכתבת מימין לשמאל",
    "devanagari": "यह एक छोटा हिंदी वाक्य है",
    "chinese": "我们在这里测试中文文本",
    "japanese": "日本語のテキスト、ひらがなとカタカナ",
    "korean": "한국어 문장도 렌더링합니다",
}


@pytest.fixture(scope="module")
def renderer():
    return TextRenderer.from_config("pixel")


def ink_columns(pixels: np.ndarray, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Columns in [lo, hi) holding any non-white pixel."""
    cols = np.where((pixels[:, lo:hi] < 255).any(axis=0))[0]
    return cols + lo


def check_strip(result, config: RenderConfig = load_config("pixel")) -> None:
    """Invariants of every result: shape, black end patch, white after it, mask."""
    P, N = config.pixels_per_patch, config.max_seq_length
    end = result.num_text_patches
    assert result.pixels.dtype == np.uint8 and result.pixels.shape[:2] == (P, P * N)
    assert 0 <= end <= N - 1
    assert (result.pixels[:, end * P : (end + 1) * P] == 0).all(), "end patch must be black"
    assert (result.pixels[:, (end + 1) * P :] == 255).all(), "everything after the end patch must be white"
    assert result.mask.dtype == bool and result.mask.shape == (N,)
    assert result.mask[: end + 1].all() and not result.mask[end + 1 :].any()


def test_pixel_config_geometry():
    c = load_config("pixel")
    assert (c.font_size, c.dpi, c.pixels_per_patch, c.max_seq_length, c.text_x) == (8, 120, 16, 529, 2)
    assert c.font_px == pytest.approx(13.333, abs=1e-3)
    assert (c.height, c.width) == (16, 8464) and not c.rgb


@pytest.mark.parametrize("text", ["a", "Hello world", "The quick brown fox jumps over the lazy dog. " * 3, "Wij"])
def test_end_patch_follows_the_text(renderer, text):
    r = renderer.render(text)
    check_strip(r)
    cols = ink_columns(r.pixels, 0, r.num_text_patches * P)
    assert cols.size, "the text must leave ink"
    # Text starts at x = 2 px (a glyph's left side bearing is at most a couple of px at this size).
    assert 2 <= cols[0] <= 4
    # The end patch is the first patch boundary after the text plus its 2 px margin: the logical right edge
    # lies between the ink's right edge and a few px (right side bearing) beyond it.
    right = cols[-1] + 1
    assert any(r.num_text_patches == math.ceil((right + d + 2) / P) for d in range(0, 4))
    assert not r.truncated and r.text == text


def test_repeated_glyph_width_is_additive(renderer):
    # With rounded glyph positions, n copies of a glyph are n times as wide: the end patch follows the formula.
    be = renderer.backend
    w1 = be.measure("m", False).width
    for n in (1, 7, 40, 300):
        r = renderer.render("m" * n)
        assert r.num_text_patches == min(math.ceil((2 + n * w1 + 2) / P), N - 1)


def test_squarified_view_round_trip(renderer):
    r = renderer.render("square view")
    sq = squarify(r.pixels)
    assert sq.shape == (368, 368)
    # Patch i of the strip lands at row i // 23, column i % 23.
    for i in (0, 1, 22, 23, 300, 528):
        np.testing.assert_array_equal(sq[(i // 23) * P : (i // 23 + 1) * P, (i % 23) * P : (i % 23 + 1) * P],
                                      r.pixels[:, i * P : (i + 1) * P])
    np.testing.assert_array_equal(unsquarify(sq), r.pixels)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_script_renders_without_missing_glyphs(renderer, script):
    r = renderer.render(SCRIPTS[script])
    check_strip(r)
    assert r.missing_glyphs == 0
    assert ink_columns(r.pixels, 0, r.num_text_patches * P).size > 10


def test_fonts_come_only_from_the_registered_files():
    # DejaVu (installed here) has Arabic; a renderer given only Noto Sans (Latin) must not use it: every Arabic
    # letter is a missing glyph. This also checks the missing-glyph count against the letter count.
    latin_only = TextRenderer.from_config("pixel", fonts=["NotoSans-Regular.ttf"], families=["Noto Sans"])
    text = "abc مرحبا"
    r = latin_only.render(text)
    assert r.missing_glyphs == sum(unicodedata_is_arabic(c) for c in text) == 5
    assert TextRenderer.from_config("pixel").render(text).missing_glyphs == 0


def unicodedata_is_arabic(c: str) -> bool:
    import unicodedata

    return unicodedata.bidirectional(c) == "AL"


def test_direction_vote():
    assert not is_rtl("Hello world") and not is_rtl("123 ...") and not is_rtl("")
    assert is_rtl("שלום עולם") and is_rtl("مرحبا بالعالم")
    assert is_rtl("שלום abc עולם")  # first and last letters are Hebrew: 2 of 3
    assert not is_rtl("abc שלום def")  # first and last are Latin
    assert is_rtl("«مرحبا» 2024!")  # punctuation and digits are skipped


@pytest.mark.parametrize("text", [SCRIPTS["arabic"], SCRIPTS["hebrew"], "שלום 2024 עולם"])
def test_rtl_text_is_right_aligned(renderer, text):
    r = renderer.render(text)
    check_strip(r)
    end = r.num_text_patches * P
    cols = ink_columns(r.pixels, 0, end)
    # Right edge of the ink sits 2 px (plus a small side bearing) before the end patch.
    assert end - 2 - 4 <= cols[-1] + 1 <= end - 2
    # The slack of the last partial patch is on the left.
    ltr_like = renderer.backend.measure(renderer.clean(text), True).width
    assert cols[0] >= end - 2 - ltr_like - 1


def test_ltr_text_is_left_aligned(renderer):
    r = renderer.render("Hello")
    assert ink_columns(r.pixels)[0] <= 4


def test_pair_equals_its_parts(renderer):
    a, b = "The first document.", "مستند ثان"
    pair, ra, rb = renderer.render((a, b)), renderer.render(a), renderer.render(b)
    check_strip(pair)
    sep = pair.sep_patches[0]
    assert sep == ra.num_text_patches
    assert (pair.pixels[:, sep * P : (sep + 1) * P] == 0).all()
    np.testing.assert_array_equal(pair.pixels[:, : sep * P], ra.pixels[:, : sep * P])
    nb = rb.num_text_patches
    np.testing.assert_array_equal(pair.pixels[:, (sep + 1) * P : (sep + 1 + nb) * P], rb.pixels[:, : nb * P])
    assert pair.num_text_patches == sep + 1 + nb
    assert pair.text == (a, b) and pair.missing_glyphs == 0


def test_pair_truncation_cuts_the_longer_text(renderer):
    long, short = "word " * 5000, "a short second text"
    r = renderer.render((long, short))
    check_strip(r)
    assert r.truncated and r.num_text_patches == N - 1 and r.mask.all()
    assert r.text[1] == short  # the short text is kept whole
    both = renderer.render((long, long))
    sep = both.sep_patches[0]
    assert both.num_text_patches == N - 1 and abs(sep - (both.num_text_patches - sep - 1)) <= 1  # half each


def test_word_mode(renderer):
    words = ["Hello", "world", "שלום", "你好", "x"]
    r = renderer.render(words)
    check_strip(r)
    starts = r.word_starts
    assert starts[0] == 0 and all(b > a for a, b in zip(starts, starts[1:])) and len(starts) == len(words)
    bounds = [*starts, r.num_text_patches]
    for w, s, e in zip(words, bounds, bounds[1:]):
        alone = renderer.render(w + " ")  # a word is drawn with a trailing space, from its own patch
        assert alone.num_text_patches == e - s
        np.testing.assert_array_equal(r.pixels[:, s * P : e * P], alone.pixels[:, : (e - s) * P])
    assert r.text == words


def test_word_mode_drops_words_that_do_not_fit(renderer):
    r = renderer.render(["longword"] * 1000)
    check_strip(r)
    assert r.truncated and 0 < len(r.word_starts) < 1000
    assert r.num_text_patches <= N - 1 and len(r.text) == len(r.word_starts)


def test_word_mode_cache_gives_the_pixels_of_a_fresh_render():
    words = [w for k in sorted(SCRIPTS) for w in SCRIPTS[k].split()]
    words = (words * 12)[:400]  # repeats, and a list that runs past the strip's end
    warm = TextRenderer.from_config("pixel")
    warm.render(words[::-1])  # every word drawn and cached first, at other positions
    cold = TextRenderer.from_config("pixel")
    a, b = warm.render(words), cold.render(words)
    assert warm._word_cache and a.truncated and b.truncated
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert (a.word_starts, a.text, a.missing_glyphs) == (b.word_starts, b.text, b.missing_glyphs)
    # A cached word never lands past the strip: the end patch stays where a fresh render puts it.
    assert a.num_text_patches == b.num_text_patches <= N - 1


def test_same_pixels_twice_and_after_pickling(renderer):
    texts = [SCRIPTS[k] for k in sorted(SCRIPTS)]
    first = [renderer.render(t).pixels for t in texts]
    again = pickle.loads(pickle.dumps(renderer))
    for t, p in zip(texts, first):
        np.testing.assert_array_equal(renderer.render(t).pixels, p)
        np.testing.assert_array_equal(again.render(t).pixels, p)


def _digest(renderer, texts) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(renderer.render(t).pixels.tobytes())
    return h.hexdigest()


def test_same_pixels_across_processes_and_system_font_setups(renderer, tmp_path):
    # A second interpreter whose system fontconfig setup prefers other fonts (DejaVu for everything) must give
    # the same pixels: the renderer never reads the system configuration.
    conf = tmp_path / "fonts.conf"
    conf.write_text(textwrap.dedent("""\
        <?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">
        <fontconfig><dir>/usr/share/fonts/truetype/dejavu</dir>
        <match target="pattern"><edit name="family" mode="prepend" binding="strong"><string>DejaVu Serif</string>
        </edit></match></fontconfig>"""))
    texts = [SCRIPTS[k] for k in sorted(SCRIPTS)] + [("pair a", "pair b"), ["w1", "w2"]]
    code = (
        "import json, sys; from tests.renderers.test_render import _digest; from renderers import TextRenderer;"
        "texts = [tuple(t) if isinstance(t, list) and len(t) == 2 and t[0] == 'pair a' else t "
        "for t in json.loads(sys.stdin.read())]; print(_digest(TextRenderer.from_config('pixel'), texts))"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {"FONTCONFIG_FILE": str(conf), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True,
                         cwd=root, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == _digest(renderer, texts)


def test_rgb_config_matches_gray():
    rgb = TextRenderer.from_config("pixel_rgb")
    gray = TextRenderer.from_config("pixel")
    text = "RGB and gray 你好"
    a, b = rgb.render(text), gray.render(text)
    assert a.pixels.shape == (P, P * N, 3)
    assert (a.pixels[..., 0] == a.pixels[..., 1]).all() and (a.pixels[..., 1] == a.pixels[..., 2]).all()
    assert a.num_text_patches == b.num_text_patches
    assert np.abs(a.pixels[..., 0].astype(int) - b.pixels).max() <= 2
    assert squarify(a.pixels).shape == (368, 368, 3)


def test_benchmark_command_measures_both_modes(capsys):
    from renderers.__main__ import main

    for extra, mode in (([], "continuous"), (["--words"], "words")):
        assert main(["--bench", "--seconds", "0.2", *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["mode"] == mode and out["lines"] > 0 and out["lines_per_second"] > 0 and out["mean_chars"] > 30

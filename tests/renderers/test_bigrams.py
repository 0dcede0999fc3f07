"""Bigram rendering (two grapheme clusters per 16x16 patch) and the rendering-environment record.

Truths used: grapheme counts written out by hand from the Unicode rules (a base letter with its combining marks,
an emoji ZWJ sequence, a flag, a conjoining-jamo syllable are one character), the patch geometry (ink only in text
patches, centring measured on the ink), the continuous mode's baseline, right-to-left placement of a letter and a
space, and file contents changed on disk."""

from __future__ import annotations

import json
import math
import pickle
import shutil

import numpy as np
import pytest

from renderers import RENDERINGS, RenderError, TextRenderer, check_environment, environment, graphemes, load_config

P, N = 16, 529


@pytest.fixture(scope="module")
def renderer():
    return TextRenderer.from_config("pixel", rendering="bigrams")


def patch(pixels: np.ndarray, i: int) -> np.ndarray:
    return pixels[:, i * P : (i + 1) * P]


def ink_cols(block: np.ndarray) -> np.ndarray:
    return np.where((block < 255).any(axis=0))[0]


def ink_rows(block: np.ndarray) -> np.ndarray:
    return np.where((block < 255).any(axis=1))[0]


def check_strip(r, text_patches: int) -> None:
    """Shape, black end patch right after `text_patches` patches, white after it, mask over text + end."""
    assert r.pixels.shape == (P, P * N) and r.pixels.dtype == np.uint8
    assert r.num_text_patches == text_patches
    assert (patch(r.pixels, text_patches) == 0).all()
    assert (r.pixels[:, (text_patches + 1) * P :] == 255).all()
    assert r.mask.tolist() == [True] * (text_patches + 1) + [False] * (N - text_patches - 1)


def render_pairs(renderer, text: str):
    """Render ASCII `text` (one grapheme a character), check one patch per two characters, and give the
    rendering with its `(character pair, patch)` list."""
    r = renderer.render(text)
    n = math.ceil(len(text) / 2)
    check_strip(r, n)
    return r, [(text[2 * i : 2 * i + 2], patch(r.pixels, i)) for i in range(n)]


@pytest.mark.parametrize(
    "text, n_chars",
    [
        ("Hello, world", 12),
        ("e\u0301e\u0301e\u0301", 3),  # e + combining acute, three times: 6 code points, 3 characters
        ("\U0001F468\u200d\U0001F469\u200d\U0001F467ab", 3),  # family (ZWJ sequence) + a + b
        ("\U0001F1EB\U0001F1F7x", 2),  # flag of France (two regional indicators) + x
        ("\u1112\u1161\u11ab\u1112\u1161\u11ab", 2),  # 한 written as conjoining jamo, twice
        ("a\u0308\u0323b", 2),  # a with two marks + b
        ("   ", 3),
        ("我们在这里测试中文", 9),
    ],
)
def test_patch_count_is_half_the_grapheme_count(renderer, text, n_chars):
    assert len(graphemes(text)) == n_chars
    r = renderer.render(text)
    check_strip(r, math.ceil(n_chars / 2))
    assert r.text == text and not r.truncated


def test_each_patch_holds_exactly_its_two_characters(renderer):
    r, pairs = render_pairs(renderer, "abcdefgh xyz!")
    for i, (pair, block) in enumerate(pairs):
        alone = renderer.render(pair)
        assert np.array_equal(block, patch(alone.pixels, 0)), i
    # A split at any other place gives other patches: the pairs really are (0,1), (2,3), ...
    shifted = renderer.render("bc")
    assert not np.array_equal(patch(r.pixels, 1), patch(shifted.pixels, 0))


def test_combining_marks_stay_with_their_letter(renderer):
    decomposed = renderer.render("e\u0301e\u0301e\u0301")
    precomposed = renderer.render("\u00e9\u00e9\u00e9")
    check_strip(decomposed, 2)
    check_strip(precomposed, 2)
    # The accent is drawn over its own e, in the same patch: both spellings give (nearly) the same ink.
    diff = np.abs(decomposed.pixels[:, : 2 * P].astype(int) - precomposed.pixels[:, : 2 * P].astype(int))
    assert diff.mean() < 8
    plain = renderer.render("eee")
    accent_rows = ink_rows(patch(decomposed.pixels, 0))
    assert accent_rows.min() < ink_rows(patch(plain.pixels, 0)).min()  # ink above the e: the accent is there


def test_ink_stays_inside_text_patches_and_every_patch_has_ink(renderer):
    _, pairs = render_pairs(renderer, "The quick brown fox jumps over the lazy dog; WWMM mmww.")
    for pair, block in pairs:
        if pair.strip():
            assert ink_cols(block).size > 0, pair


def test_bigram_is_centred_horizontally_on_the_continuous_baseline(renderer):
    r = renderer.render("ll")
    cols = ink_cols(patch(r.pixels, 0))
    left, right = cols.min(), P - 1 - cols.max()
    assert abs(left - right) <= 1.5, (left, right)
    cont = renderer.render("ll", rendering="continuous")
    assert ink_rows(patch(r.pixels, 0)).tolist() == ink_rows(cont.pixels[:, : cont.num_text_patches * P]).tolist()


def test_a_space_is_a_character_and_its_side_shows(renderer):
    a_space, space_a = renderer.render("a "), renderer.render(" a")
    check_strip(a_space, 1)
    check_strip(space_a, 1)
    left, right = ink_cols(patch(a_space.pixels, 0)).mean(), ink_cols(patch(space_a.pixels, 0)).mean()
    assert left < P / 2 - 0.5 and right > P / 2 + 0.5 and right - left >= 2  # a space is about 3.5 px wide


def test_wide_pairs_are_squeezed_into_the_patch_not_clipped(renderer):
    r = renderer.render("中文")  # two ideographs of 13.3 px: 26 px wide
    block = patch(r.pixels, 0)
    cols = ink_cols(block)
    assert cols.min() <= 2 and cols.max() >= P - 3  # spans the patch
    assert (block[:, : P // 2] < 128).sum() > 10 and (block[:, P // 2 :] < 128).sum() > 10  # both glyphs drawn
    cont = renderer.render("中文", rendering="continuous")
    # Squeezed horizontally only: the rows holding ink are those of the continuous render.
    assert ink_rows(block).tolist() == ink_rows(cont.pixels[:, : cont.num_text_patches * P]).tolist()


@pytest.mark.parametrize("text", ["我们在这里测试中文文本", "日本語のテキスト、ひらがなとカタカナ", "한국어 문장도 렌더링합니다"])
def test_cjk_gives_one_patch_per_two_characters_each_inked(renderer, text):
    r = renderer.render(text)
    check_strip(r, math.ceil(len(text) / 2))
    assert r.missing_glyphs == 0
    for i in range(r.num_text_patches):
        if text[2 * i : 2 * i + 2].strip():
            assert (patch(r.pixels, i) < 128).sum() > 10


@pytest.mark.parametrize("text", ["נץ עברית נכתבת מימין לשמאל", "نص عربي قصير للتجربة"])
def test_rtl_patches_in_logical_order(renderer, text):
    r = renderer.render(text)
    n = math.ceil(len(graphemes(text)) / 2)
    check_strip(r, n)
    assert r.missing_glyphs == 0
    first = renderer.render(text[:2])
    assert np.array_equal(patch(r.pixels, 0), patch(first.pixels, 0))  # patch 0 holds the first two characters
    assert (r.pixels[:, : n * P] < 128).sum() > 20 * n


def test_rtl_pair_puts_the_first_character_on_the_right(renderer):
    # Alef then a space, in a right-to-left text: the alef is the first character, so it sits on the right.
    r = renderer.render("\u05d0 \u05d1\u05d2")
    cols = ink_cols(patch(r.pixels, 0))
    assert cols.mean() > P / 2 + 1


def test_truncation_keeps_the_first_characters(renderer):
    fits = "ab" * (N - 1)
    r = renderer.render(fits)
    check_strip(r, N - 1)
    assert not r.truncated and r.text == fits
    over = renderer.render(fits + "c")
    check_strip(over, N - 1)
    assert over.truncated and over.text == fits
    huge = renderer.render("x\u0301" * 200_000)  # long text of 2-code-point characters: cut between clusters
    check_strip(huge, N - 1)
    assert huge.truncated and huge.text == "x\u0301" * (2 * (N - 1))


def test_pair_input_shares_the_strip(renderer):
    r = renderer.render(("abcd", "efg"))
    assert r.sep_patches == [2] and r.num_text_patches == 5
    assert (patch(r.pixels, 2) == 0).all() and (patch(r.pixels, 5) == 0).all()
    assert np.array_equal(patch(r.pixels, 3), patch(renderer.render("ef").pixels, 0))
    long = renderer.render(("a" * 2000, "b" * 10))
    assert long.truncated and long.sep_patches == [N - 2 - 5] and long.num_text_patches == N - 1
    assert long.text == ("a" * (2 * (N - 7)), "b" * 10)


@pytest.mark.parametrize("size", [0, 3])
def test_cache_gives_the_same_pixels_as_no_cache(size):
    texts = ["The cat sat on the mat, the cat sat.", "中文中文 ab ab", "نص عربي", "ab" * 40, "the cat"]
    cached = TextRenderer.from_config("pixel", rendering="bigrams")
    other = TextRenderer(load_config("pixel"), rendering="bigrams", bigram_cache_size=size)
    for _ in range(2):  # the second round hits the cache (size 3: after evictions)
        for t in texts:
            a, b = cached.render(t), other.render(t)
            assert np.array_equal(a.pixels, b.pixels) and a.missing_glyphs == b.missing_glyphs
    assert len(other._bigram_cache) == size
    assert 0 < len(cached._bigram_cache) <= sum(math.ceil(len(graphemes(t)) / 2) for t in texts)


def test_empty_and_blank_texts(renderer):
    empty = renderer.render("")
    check_strip(empty, 0)
    assert empty.text == "" and not empty.truncated
    spaces = renderer.render("    ")
    check_strip(spaces, 2)
    assert (spaces.pixels[:, : 2 * P] == 255).all()
    odd = renderer.render("     ")
    check_strip(odd, 3)
    assert renderer.render("\n\t").num_text_patches == 1  # newline and tab become spaces


def test_missing_glyphs_are_counted_as_in_continuous_mode(renderer):
    text = "a\U0001F600b \U0001F600\U0001F600 x"  # no configured font has emoji
    r = renderer.render(text)
    cont = renderer.render(text, rendering="continuous")
    assert r.missing_glyphs == cont.missing_glyphs == 3


def test_words_rendering_of_a_str_is_the_word_list(renderer):
    a = renderer.render("hello  big world", rendering="words")
    b = renderer.render(["hello", "big", "world"])
    assert np.array_equal(a.pixels, b.pixels) and a.word_starts == b.word_starts


def test_rendering_option_is_validated_kept_and_pickled():
    with pytest.raises(RenderError, match="rendering must be one of"):
        TextRenderer.from_config("pixel", rendering="bigram")
    with pytest.raises(RenderError, match="bigram_cache_size"):
        TextRenderer(bigram_cache_size=-1)
    r = TextRenderer.from_config("pixel", rendering="bigrams")
    with pytest.raises(RenderError, match="rendering must be one of"):
        r.render("x", rendering="chars")
    assert RENDERINGS == ("continuous", "words", "bigrams")
    back = pickle.loads(pickle.dumps(r))
    assert back.rendering == "bigrams"
    assert np.array_equal(back.render("ab cd").pixels, r.render("ab cd").pixels)
    assert r.render("ab cd").num_text_patches == 3
    assert r.render("ab cd", rendering="continuous").num_text_patches == math.ceil(
        (4 + TextRenderer().backend.measure("ab cd", False).width) / P
    )


def test_rgb_bigrams_match_gray():
    rgb = TextRenderer.from_config("pixel_rgb", rendering="bigrams")
    gray = TextRenderer.from_config("pixel", rendering="bigrams")
    a, b = rgb.render("RGB 你好 ab"), gray.render("RGB 你好 ab")
    assert a.pixels.shape == (P, P * N, 3) and a.num_text_patches == b.num_text_patches == 5
    assert np.abs(a.pixels[..., 0].astype(int) - b.pixels).max() <= 2


def test_benchmark_measures_every_mode(capsys):
    from renderers.__main__ import SAMPLE, main

    assert main(["--bench", "--seconds", "0.1", "--modes", "continuous,words,bigrams,bigrams-nocache"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [m["mode"] for m in out["modes"]] == ["continuous", "words", "bigrams", "bigrams-nocache"]
    for m in out["modes"]:
        assert m["lines_per_second"] > 0 and m["patches_per_second"] > m["lines_per_second"]
    bigrams = out["modes"][2]
    assert bigrams["mean_patches"] == pytest.approx(np.mean([math.ceil(len(graphemes(t)) / 2) + 1 for t in SAMPLE]))


# -- environment ------------------------------------------------------------------------------------------------


def test_environment_is_json_and_matches_itself():
    env = environment("pixel")
    assert json.loads(json.dumps(env)) == env
    cfg = load_config("pixel")
    assert [f["file"] for f in env["fonts"]] == list(cfg.fonts)
    assert all(len(f["sha256"]) == 64 for f in env["fonts"])
    assert set(env["libraries"]) == {"pango", "cairo", "harfbuzz", "freetype", "fontconfig"}
    assert env["libraries"]["pango"].count(".") == 2 and env["libraries"]["cairo"].count(".") == 2
    assert check_environment(env) == []
    assert TextRenderer().environment() == env


def test_changed_font_file_and_library_show_up(tmp_path):
    src = load_config("pixel").font_paths()[0]
    font = tmp_path / src.name
    shutil.copyfile(src, font)
    cfg = load_config("pixel", fonts=[str(font)], families=["Noto Sans"])
    recorded = environment(cfg)
    assert check_environment(recorded) == []
    with open(font, "ab") as f:  # same name, new content
        f.write(b"\0")
    diffs = check_environment(recorded)
    assert len(diffs) == 1 and src.name in diffs[0] and "sha256" in diffs[0]
    older = json.loads(json.dumps(recorded))
    older["libraries"]["pango"] = "1.0.0"
    assert any(d.startswith("pango: 1.0.0 recorded") for d in check_environment(older, current=recorded))
    older["config"]["font_size"] = 9.0
    assert any("font_size" in d for d in check_environment(older, current=recorded))
    font.unlink()
    gone = check_environment(recorded)
    assert len(gone) == 1 and "font file not found" in gone[0]
    with pytest.raises(RenderError, match="recorded rendering environment"):
        check_environment({"fonts": "x"})

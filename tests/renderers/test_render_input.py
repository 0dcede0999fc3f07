"""Bad and unusual input to the renderer: each gets a clear error or a documented, tested behaviour."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest

from renderers import FontError, RenderConfig, RenderError, TextRenderer, load_config
from tests.renderers.test_render import N, P, check_strip, ink_columns


@pytest.fixture(scope="module")
def renderer():
    return TextRenderer.from_config("pixel")


def test_empty_text_is_just_the_end_patch(renderer):
    for text in ("", "\x00\x01"):
        r = renderer.render(text)
        check_strip(r)
        assert r.num_text_patches == 0 and r.mask.sum() == 1 and r.text == ""
    assert renderer.render([]).num_text_patches == 0 and renderer.render([]).word_starts == []
    pair = renderer.render(("", "b"))
    assert pair.sep_patches == [0] and pair.num_text_patches > 1


def test_newlines_and_tabs_become_spaces_and_controls_are_removed(renderer):
    same = renderer.render("one two three").pixels
    for variant in ("one\ntwo\r\nthree", "one\ttwo\u2028three", "o\x00ne tw\x07o thr\x1bee\x7f"):
        np.testing.assert_array_equal(renderer.render(variant.replace("\r\n", "\n")).pixels, same)
    assert renderer.render("a\r\nb").text == "a  b"


def test_lone_surrogates(renderer):
    with pytest.raises(RenderError, match=r"position 3 .*errors='replace'"):
        renderer.render("abc\ud800def")
    lenient = TextRenderer.from_config("pixel", errors="replace")
    r = lenient.render("abc\ud800def")
    assert r.text == "abc\ufffddef"
    np.testing.assert_array_equal(r.pixels, renderer.render("abc\ufffddef").pixels)


def test_one_megabyte_of_text_is_cut_at_the_longest_fitting_prefix(renderer):
    text = ("Long reviews are cut at a patch boundary. " * 30000)[:1_000_000]
    r = renderer.render(text)
    check_strip(r)
    assert r.truncated and r.num_text_patches == N - 1 and text.startswith(r.text)
    # Longest: one more character would no longer fit before the last patch.
    assert renderer.render(text[: len(r.text) + 1]).truncated
    assert not renderer.render(r.text).truncated
    # The clip keeps every glyph inside the text patches.
    assert ink_columns(r.pixels, 0, (N - 1) * P)[-1] < (N - 1) * P


def test_truncation_keeps_marks_with_their_letter(renderer):
    text = "e\u0301" * 4000  # e + combining acute
    r = renderer.render(text)
    assert r.truncated and len(r.text) % 2 == 0 and not unicodedata.combining(text[len(r.text)])


def test_missing_glyphs_are_counted(renderer):
    r = renderer.render("a\U0001d800b\U000e0030")  # Sutton SignWriting and an unassigned tag: no font has them
    assert r.missing_glyphs >= 1
    check_strip(r)


def test_wrong_types_and_shapes(renderer):
    for bad in (b"bytes", 3, None, ("a", "b", "c"), ["ok", 5]):
        with pytest.raises(RenderError):
            renderer.render(bad)


def test_missing_font_file_and_unknown_family():
    with pytest.raises(FontError, match=r"NoSuchFont\.ttf.*fonts-noto-core"):
        TextRenderer.from_config("pixel", fonts=["NoSuchFont.ttf"]).render("x")
    with pytest.raises(FontError, match=r"/nowhere/font\.ttf"):
        TextRenderer.from_config("pixel", fonts=["/nowhere/font.ttf"]).render("x")
    with pytest.raises(FontError, match=r"Noto Snas.*provide: .*Noto Sans"):
        TextRenderer.from_config("pixel", families=["Noto Snas"]).render("x")


def test_font_that_is_not_a_font(tmp_path):
    fake = tmp_path / "fake.ttf"
    fake.write_bytes(b"not a font at all")
    with pytest.raises(FontError, match="cannot read font file"):
        TextRenderer.from_config("pixel", fonts=[str(fake)]).render("x")


def test_font_dirs_from_the_environment(monkeypatch, tmp_path):
    import shutil

    shutil.copy("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", tmp_path / "Mine.ttf")
    monkeypatch.setenv("RENDERERS_FONT_DIRS", str(tmp_path))
    r = TextRenderer.from_config("pixel", fonts=["Mine.ttf"], families=["Noto Sans"])
    assert r.config.font_paths()[0].parent == tmp_path.resolve()
    assert r.render("hi").missing_glyphs == 0


def test_config_errors(tmp_path):
    with pytest.raises(RenderError, match="Did you mean 'pixel'"):
        load_config("pixle")
    with pytest.raises(RenderError, match="Did you mean 'font_size'"):
        load_config("pixel", font_sise=9)
    with pytest.raises(RenderError, match="max_seq_length"):
        load_config("pixel", max_seq_length=1)
    with pytest.raises(RenderError, match="text_x"):
        load_config("pixel", text_x=16)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RenderError, match="not valid JSON"):
        load_config(str(bad))
    with pytest.raises(RenderError, match="errors must be"):
        TextRenderer(errors="ignore")


def test_config_round_trip_and_custom_geometry(tmp_path):
    c = load_config("pixel", max_seq_length=16, name="short")
    path = tmp_path / "short.json"
    path.write_text(json.dumps(c.to_dict()))
    assert load_config(str(path)) == c == RenderConfig.from_dict(json.loads(c.to_json()))
    r = TextRenderer.from_config(str(path)).render("a text longer than sixteen patches of sixteen pixels each")
    check_strip(r, c)
    assert r.pixels.shape == (16, 256) and r.truncated and r.num_text_patches == 15

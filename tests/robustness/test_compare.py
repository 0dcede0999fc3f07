import numpy as np
import pytest

from multiseq.errors import ConfigError
from multiseq.robustness.compare import compare_drops


def _result(clean, noisy, seed=0, noise="confusable", severity=0.5):
    bits = lambda v: "".join("1" if x else "0" for x in v)
    return {"seed": seed, "n": len(clean), "clean_correct": bits(clean),
            "rows": [{"noise": noise, "severity": severity, "correct": bits(noisy)}]}


def test_difference_of_drops_is_exact_and_its_interval_covers_it():
    rng = np.random.default_rng(0)
    clean = rng.random(400) < 0.9
    a = _result(clean, clean & (rng.random(400) < 0.95))   # loses about 4 points
    b = _result(clean, clean & (rng.random(400) < 0.70))   # loses about 27 points
    c = compare_drops(a, b, "confusable", 0.5, factor=0.5)
    drop_a = clean.mean() - np.array([x == "1" for x in a["rows"][0]["correct"]]).mean()
    drop_b = clean.mean() - np.array([x == "1" for x in b["rows"][0]["correct"]]).mean()
    assert c["drop_a"] == pytest.approx(drop_a) and c["drop_b"] == pytest.approx(drop_b)
    assert c["difference"] == pytest.approx(drop_a - 0.5 * drop_b)
    assert c["low"] <= c["difference"] <= c["high"] < 0  # a clearly loses less than half of b's drop
    # Swapped, the same comparison clearly fails.
    assert compare_drops(b, a, "confusable", 0.5, factor=0.5)["low"] > 0


def test_identical_models_give_a_zero_difference_with_a_zero_width_interval():
    clean = np.arange(50) % 3 > 0
    r = _result(clean, clean & (np.arange(50) % 5 > 0))
    c = compare_drops(r, r, "confusable", 0.5)
    assert c["difference"] == 0 and c["low"] == 0 and c["high"] == 0


def test_unpaired_sweeps_and_missing_cells_are_refused():
    clean = np.ones(10, dtype=bool)
    with pytest.raises(ConfigError, match="not paired"):
        compare_drops(_result(clean, clean), _result(clean, clean, seed=1), "confusable", 0.5)
    with pytest.raises(ConfigError, match="no sweep cell"):
        compare_drops(_result(clean, clean), _result(clean, clean), "phonetic", 0.5)
    with pytest.raises(ConfigError, match="not paired"):
        compare_drops(_result(clean, clean), _result(np.ones(12, dtype=bool), np.ones(12, dtype=bool)),
                      "confusable", 0.5)

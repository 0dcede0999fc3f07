"""Intervals of the sweep (Wilson for accuracies, paired bootstrap for drops), sweeps of any predictor of raw
inputs (a scikit-learn pipeline here), the tables and the plot, and the noisy-training view."""

from __future__ import annotations

import numpy as np
import pytest

from multiseq.errors import ConfigError
from multiseq.robustness.augment import NoisyTraining
from multiseq.robustness.report import plot_sweeps, write_tables
from multiseq.robustness.sweep import (
    NoisyDataset,
    bootstrap_indices,
    check_predictor,
    format_table,
    markdown_table,
    paired_bootstrap,
    sweep,
    wilson,
)
from tests.robustness.test_robustness_sweep import Images, Texts


@pytest.mark.parametrize("k, n, lo, hi", [
    (50, 100, 0.4038, 0.5962),   # the textbook case
    (0, 10, 0.0, 0.2775),        # closed form at k=0: z^2 / (n + z^2)
    (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),
])
def test_wilson_known_values(k, n, lo, hi):
    a, b = wilson(k, n)
    assert a == pytest.approx(lo, abs=6e-4) and b == pytest.approx(hi, abs=6e-4)


def test_wilson_matches_scipy():
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    for n in rng.integers(1, 3000, 20):
        k = int(rng.integers(0, n + 1))
        ci = binomtest(k, int(n)).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson(k, int(n)) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_closed_form_at_zero_and_symmetry():
    z2 = 1.959963984540054 ** 2
    for n in (1, 7, 2000):
        assert wilson(0, n)[1] == pytest.approx(z2 / (n + z2))
        lo, hi = wilson(3, n) if n >= 3 else wilson(0, n)
        lo2, hi2 = wilson(n - 3, n) if n >= 3 else wilson(n, n)
        assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)
    with pytest.raises(ConfigError):
        wilson(11, 10)


def test_paired_bootstrap_is_deterministic_and_sensible():
    rng = np.random.default_rng(5)
    clean = rng.random(500) < 0.8
    noisy = clean & (rng.random(500) < 0.9)  # noise only breaks examples: true drop ~ 0.08
    a = paired_bootstrap(clean, noisy, resamples=500, seed=3)
    assert a == paired_bootstrap(clean, noisy, resamples=500, seed=3)
    assert a != paired_bootstrap(clean, noisy, resamples=500, seed=4)
    drop = clean.mean() - noisy.mean()
    assert a[0] < drop < a[1] and a[0] > 0  # the drop is never negative here, so neither is its lower bound
    assert np.array_equal(bootstrap_indices(10, 3, 1), bootstrap_indices(10, 3, 1))
    assert paired_bootstrap(clean, clean, resamples=50) == (0.0, 0.0)
    # Pairing: a shift that moves the same few examples gives a tighter interval than the unpaired accuracies.
    lo_c, hi_c = wilson(int(clean.sum()), 500)
    assert a[1] - a[0] < hi_c - lo_c
    with pytest.raises(ConfigError):
        paired_bootstrap(clean, noisy[:10])


def _pipeline():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = Texts("train", size=40)
    return make_pipeline(CountVectorizer(), LogisticRegression()).fit([x for x, _ in train], train.labels)


def test_sweep_takes_a_scikit_learn_pipeline(tmp_path):
    pipe, data = _pipeline(), Texts()
    res = sweep(pipe, data, ["truncate", "disemvowel"], [0.2, 0.8], seed=0, batch_size=5, bootstrap=200)
    assert res["clean_accuracy"] == 1.0 and res["predictor"] == "Pipeline"
    assert res["clean_low"] < 1.0 == res["clean_high"]
    for r in res["rows"]:
        # the accuracy agrees with the pipeline's own predictions on the noised texts
        noisy = NoisyDataset(data, r["noise"], r["severity"], 0)
        items = [noisy[i] for i in range(len(data))]
        assert r["accuracy"] == pytest.approx(np.mean(pipe.predict([x for x, _ in items]) == data.labels))
        assert r["accuracy_low"] <= r["accuracy"] <= r["accuracy_high"]
        assert r["drop_low"] <= r["drop"] + 1e-12 and r["drop"] <= r["drop_high"] + 1e-12
        assert len(r["correct"]) == len(data) and r["n"] == len(data)
    again = sweep(pipe, data, ["truncate", "disemvowel"], [0.2, 0.8], seed=0, batch_size=7, bootstrap=200)
    assert again["rows"] == res["rows"]
    text = format_table(res)
    assert "clean accuracy 1.000 [" in text and "disemvowel" in text
    md = markdown_table({"a": res, "b": again})
    assert md.splitlines()[0].startswith("| noise | severity | a accuracy | a drop | b accuracy | b drop |")
    assert md.count("\n| truncate |") == 2 and "Wilson" in md and "bootstrap" in md
    write_tables({"a": res, "b": again}, tmp_path)
    assert (tmp_path / "table.md").read_text() == md and "== a" in (tmp_path / "table.txt").read_text()
    assert plot_sweeps({"a": res, "b": again}, tmp_path / "p.png").stat().st_size > 1000


def test_sweep_refuses_what_is_not_a_predictor():
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(ConfigError, match="predictor of raw inputs"):
        sweep(object(), Texts(), ["truncate"], [0.5])
    with pytest.raises(ConfigError, match="not fitted"):
        check_predictor(LogisticRegression())

    class Wrong:
        def predict(self, xs):
            return [0]

    with pytest.raises(ConfigError, match="returned 1 predictions"):
        sweep(Wrong(), Texts(), ["truncate"], [0.5], batch_size=4)


def test_noisy_training_is_deterministic_and_keeps_labels():
    data = Texts(size=60)
    a, b = NoisyTraining(data, "all", 0.5, seed=3), NoisyTraining(data, "all", 0.5, seed=3)
    items = [a[i] for i in range(len(data))]
    assert items == [b[i] for i in range(len(data))] == [a[i] for i in range(len(data))]  # epoch-free
    assert [y for _, y in items] == data.labels and a.num_classes == 2 and a.labels == data.labels
    changed = [i for i in range(len(data)) if items[i][0] != data[i][0]]
    assert changed and set(changed) <= {i for i in range(len(data)) if a.plan(i) is not None}
    assert [a.plan(i) for i in range(20)] != [NoisyTraining(data, "all", 0.5, seed=4).plan(i) for i in range(20)]
    assert a[-1] == a[len(data) - 1]
    for noise, sev, _ in filter(None, (a.plan(i) for i in range(len(data)))):
        assert 0.2 <= sev <= 0.8 and noise in ("full-swap", "inner-swap", "intrude", "disemvowel", "truncate",
                                                "keyboard-typo", "natural-typo", "phonetic", "segmentation",
                                                "confusable")


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_noisy_training_probability(p):
    data = Texts(size=4)

    class Many:  # plan() only needs the index, so a long dataset costs nothing
        def __len__(self):
            return 4000

        def __getitem__(self, i):
            return data[i % 4]

    n = 4000
    share = sum(NoisyTraining(Many(), "all", p, seed=0).plan(i) is not None for i in range(n)) / n
    assert abs(share - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12


def test_noisy_training_images_and_bad_arguments():
    data = Images(size=8)
    view = NoisyTraining(data, ["gaussian_noise"], 1.0, seed=0)
    x, y = view[0]
    assert x.shape == data[0][0].shape and x.dtype == data[0][0].dtype and y == data[0][1]
    assert 1 <= view.plan(0)[1] <= 5 and isinstance(view.plan(0)[1], int)
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ConfigError, match="probability"):
            NoisyTraining(Texts(), "all", bad)
    with pytest.raises(ConfigError):
        NoisyTraining(Texts(), "all", 0.5, severity_range=(0.5, 2.0))
    with pytest.raises(ConfigError, match="not a text noise"):
        NoisyTraining(Texts(), ["gaussian_noise"], 0.5)

"""Reference models: majority class and TF-IDF + logistic regression."""

import pytest

from multiseq.baselines import majority_accuracy, text_baseline
from multiseq.errors import ConfigError

GOOD = ["a wonderful, moving film", "wonderful acting and a great story", "great fun, loved it", "loved every minute"]
BAD = ["a dull, boring mess", "boring plot and awful acting", "awful, I hated it", "hated every minute"]


def test_majority_accuracy_counts_the_most_frequent_training_label():
    assert majority_accuracy([0, 0, 1], [0, 1, 1, 1]) == 0.25
    with pytest.raises(ConfigError):
        majority_accuracy([], [1])


def test_tfidf_baseline_separates_words_it_has_seen():
    texts = GOOD * 3 + BAD * 3
    labels = [1] * 12 + [0] * 12
    result = text_baseline(texts, labels, ["great story, loved it", "boring and awful"], [1, 0])
    assert result.accuracy == 1.0 and result.seconds >= 0
    assert list(result.model.predict(["wonderful", "dull mess"])) == [1, 0]


def test_tfidf_baseline_needs_two_classes():
    with pytest.raises(ConfigError, match="two classes"):
        text_baseline(GOOD, [1] * 4, GOOD, [1] * 4)

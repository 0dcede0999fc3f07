"""Reference models every learning figure is reported beside: the majority class and, for text, scikit-learn's
TF-IDF + logistic regression (word unigrams and bigrams, sublinear term frequency).

    from multiseq.baselines import text_baseline
    result = text_baseline(train_texts, train_labels, val_texts, val_labels)
    print(result.accuracy, result.seconds)

`result.model` is a fitted scikit-learn `Pipeline` with `predict(list_of_texts)`, so it plugs into anything that
takes a predictor of texts (e.g. the robustness sweep).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multiseq.errors import ConfigError


@dataclass(frozen=True)
class BaselineResult:
    """A fitted reference model and its accuracy on the given evaluation split."""

    name: str
    accuracy: float
    seconds: float
    model: Any


def majority_accuracy(train_labels: Sequence[Any], eval_labels: Sequence[Any]) -> float:
    """Accuracy of always predicting the most frequent training label."""
    if len(train_labels) == 0 or len(eval_labels) == 0:
        raise ConfigError("majority_accuracy needs non-empty train and evaluation labels")
    top = Counter(list(train_labels)).most_common(1)[0][0]
    return float(np.mean([y == top for y in eval_labels]))


def tfidf_pipeline(max_features: int | None = None, C: float = 4.0, seed: int = 0) -> Any:
    """The unfitted TF-IDF (1-2 grams, sublinear tf) + logistic-regression `Pipeline`."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
    except ImportError:
        raise ImportError("the TF-IDF baseline needs scikit-learn: pip install 'multiseq[sklearn]'") from None
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=max_features),
        LogisticRegression(C=C, max_iter=1000, random_state=seed),
    )


def text_baseline(
    train_texts: Sequence[str],
    train_labels: Sequence[Any],
    eval_texts: Sequence[str],
    eval_labels: Sequence[Any],
    **options: Any,
) -> BaselineResult:
    """Fit the TF-IDF + logistic-regression pipeline on the training texts and score it on the evaluation texts.

    Args:
        train_texts, train_labels: what the compared model trains on (same texts, same labels).
        eval_texts, eval_labels: the evaluation split (validation during development).
        **options: `tfidf_pipeline` arguments.
    """
    if len(set(train_labels)) < 2:
        raise ConfigError("the TF-IDF baseline needs at least two classes in the training labels")
    t0 = time.perf_counter()
    model = tfidf_pipeline(**options).fit(list(train_texts), list(train_labels))
    accuracy = float(np.mean(model.predict(list(eval_texts)) == np.asarray(list(eval_labels))))
    return BaselineResult("tfidf_logreg", accuracy, time.perf_counter() - t0, model)

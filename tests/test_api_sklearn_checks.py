"""scikit-learn's own estimator checks on TextClassifier and ImageClassifier (issue #18 item 9).

The classifiers take texts and images, so their tags say "no 2-D numeric arrays" and `check_estimator` then runs
only the API checks that need no data. To run the data checks too, each is wrapped in a test-only subclass that
turns a numeric row into a text (numbers printed) or an image (the row tiled into a 4x4 float image) and declares
2-D input: everything else (fit, predict, classes_, clone, pickle, idempotent fits, label validation, messages)
is the real classifier's code. Tiny models (width 8, one layer, two steps): about ten seconds on one thread.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from multiseq import ImageClassifier, TextClassifier

TINY = {"width": 8, "depth": 1}


def _rows(X):
    if hasattr(X, "toarray") or (isinstance(X, np.ndarray) and X.ndim == 2):
        return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)
    return None


class _NumericRows:
    """Test adapter: each numeric row becomes one input through `_from_row`; the tags declare 2-D input and
    switch off the real classifier's own input tag (`_own_input_tag`)."""

    _own_input_tag = ""

    def _prepare(self, X):
        rows = _rows(X)
        if rows is None:
            return super()._prepare(X)
        return [self._from_row(row) for row in rows]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        setattr(tags.input_tags, self._own_input_tag, False)
        return tags


class NumericText(_NumericRows, TextClassifier):
    """TextClassifier reading each numeric row as the text of its numbers (test adapter only)."""

    _own_input_tag = "string"

    def _from_row(self, row):
        return " ".join(f"{v:.2f}" for v in row)


class NumericImage(_NumericRows, ImageClassifier):
    """ImageClassifier reading each numeric row as a 4x4 gray float image in [0, 1] (test adapter only)."""

    _own_input_tag = "three_d_array"

    def _from_row(self, row):
        return (1 / (1 + np.exp(-np.resize(row, (4, 4))))).astype(np.float32)


# Checks expected to fail, and why. Each is about numeric feature matrices, which these classifiers do not take,
# or about a learning bar that two optimiser steps cannot reach.
NOT_NUMERIC = "inputs are texts or images, not numeric feature matrices; the test adapter's numeric rows are a stand-in"
EXPECTED = {
    "check_n_features_in_after_fitting": "no n_features_in_: a text or image has no fixed feature count",
    "check_n_features_in": "no n_features_in_: a text or image has no fixed feature count",
    "check_estimators_nan_inf": NOT_NUMERIC + " (NaN/inf in X would be a number printed as text / a pixel)",
    "check_estimator_sparse_tag": NOT_NUMERIC + " (the test adapter densifies sparse matrices)",
    "check_estimators_empty_data_messages": NOT_NUMERIC + " (12 rows of 0 features are 12 empty texts, valid input; "
                                            "0 samples is refused)",
    "check_classifier_data_not_an_array": "X must be a list / array / Series of texts or images; an arbitrary "
                                          "array-like wrapper is refused with InputError",
    "check_classifiers_train": "two optimiser steps of a width-8 model do not reach scikit-learn's 0.83 accuracy bar",
    "check_fit2d_predict1d": NOT_NUMERIC + " (a 1-D array is a list of texts/images, not one sample to reshape)",
}


def _expected(est):
    return EXPECTED


@pytest.fixture(autouse=True)
def _quiet_one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_num_threads(before)


@parametrize_with_checks(
    [
        NumericText(input="bytes", steps=2, batch_size=8, max_length=32, progress=False, model_options=TINY),
        NumericImage(input="pixels", image_size=4, steps=2, batch_size=8, progress=False, model_options=TINY),
        TextClassifier(input="bytes", steps=2, progress=False, model_options=TINY),
        ImageClassifier(steps=2, progress=False, model_options=TINY),
    ],
    expected_failed_checks=_expected,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)

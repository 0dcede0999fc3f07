"""TextClassifier / ImageClassifier: training, persistence, scikit-learn conventions, input handling.

Models here are one layer of width 32 trained for a few steps on small, separable data; one torch thread (the
shared test machine runs many processes, and two OpenMP threads per process are far slower there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import multiseq
from multiseq import ImageClassifier, TextClassifier
from multiseq.checkpoint import save_model
from multiseq.errors import CheckpointError, ConfigError, InputError

TINY = {"width": 32, "depth": 1}
POS = ["good great fine", "great good movie", "fine and good", "a great film", "good good good", "great fine"]
NEG = ["bad awful poor", "awful bad movie", "poor and bad", "an awful film", "bad bad bad", "awful poor"]
TEXTS, LABELS = POS + NEG, ["pos"] * len(POS) + ["neg"] * len(NEG)


pytestmark = pytest.mark.usefixtures("one_thread")  # see the module docstring


def text_clf(**kw):
    return TextClassifier(**{"steps": 25, "batch_size": 12, "lr": 3e-3, "progress": False, "model_options": TINY, **kw})


@pytest.fixture(scope="module")
def fitted_pixels():
    torch.set_num_threads(1)
    return text_clf(input="pixels").fit(TEXTS, LABELS)


def test_lazy_exports():
    assert multiseq.TextClassifier is TextClassifier and "TextClassifier" in multiseq.__all__
    with pytest.raises(AttributeError):
        multiseq.NoSuchThing  # noqa: B018


def test_rendered_text_classifier_learns_and_round_trips(fitted_pixels, tmp_path):
    clf = fitted_pixels
    assert clf.score(TEXTS, LABELS) >= 0.9
    assert list(clf.classes_) == ["neg", "pos"] and clf.model_.config.adapter.kind == "render"
    probs = clf.predict_proba(TEXTS)
    assert probs.shape == (12, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    path = clf.save(tmp_path / "clf.safetensors")
    same = TextClassifier.load(path)
    np.testing.assert_array_equal(same.predict_proba(TEXTS), probs)
    assert list(same.predict(["good film"])) == list(clf.predict(["good film"]))
    assert same.get_params() == clf.get_params()
    # The renderer's whole configuration travels in the model config inside the file.
    overrides = same.model_.config.adapter.options["overrides"]
    assert overrides["font_size"] == 8.0 and overrides["fonts"][0] == "NotoSans-Regular.ttf"


def test_bytes_classifier_and_cross_val_score():
    scores = cross_val_score(text_clf(input="bytes", steps=3), TEXTS, LABELS, cv=2)
    assert scores.shape == (2,) and ((0 <= scores) & (scores <= 1)).all()
    clf = text_clf(input="bytes").fit(TEXTS, LABELS)
    assert clf.model_.config.adapter.kind == "bytes" and clf.score(TEXTS, LABELS) >= 0.9


@pytest.mark.parametrize("input", ["bytes", "pixels"])
def test_pretrain_steps_self_pretrain_the_body_before_fine_tuning(input):
    plain = text_clf(input=input, steps=2).fit(TEXTS, LABELS)
    spt = text_clf(input=input, steps=2, pretrain_steps=3).fit(TEXTS, LABELS)
    assert spt.pretrain_history_["train"]["step"] == 3 and not hasattr(plain, "pretrain_history_")
    assert spt.history_["train"]["step"] == 2 and spt.score(TEXTS, LABELS) >= 0.0
    # Same seed and fine-tuning: only the pretraining stage can make the bodies differ.
    differ = [k for k, v in plain.model_.state_dict().items() if not torch.equal(v, spt.model_.state_dict()[k])]
    assert any(not k.startswith("head") for k in differ)
    assert clone(spt).get_params()["pretrain_steps"] == 3
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="pretrain_steps must be an int >= 0"):
            text_clf(input=input, steps=2, pretrain_steps=bad).fit(TEXTS, LABELS)


def test_clone_pipeline_and_grid_search():
    clf = text_clf(input="bytes", steps=2)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "model_")
    pipe = Pipeline([("lower", FunctionTransformer(lambda xs: [x.lower() for x in xs])), ("clf", clf)])
    pipe.fit([t.upper() for t in TEXTS], LABELS)
    assert set(pipe.predict(["GOOD"])) <= {"pos", "neg"}
    search = GridSearchCV(clf, {"lr": [1e-3, 3e-3]}, cv=2).fit(TEXTS, LABELS)
    assert search.best_params_["lr"] in (1e-3, 3e-3) and hasattr(search.best_estimator_, "model_")


def test_text_inputs(tmp_path, fitted_pixels):
    f = tmp_path / "review.txt"
    f.write_text("good great fine", encoding="utf-8")
    clf = fitted_pixels
    np.testing.assert_array_equal(clf.predict_proba([f]), clf.predict_proba(["good great fine"]))
    np.testing.assert_array_equal(clf.predict_proba(np.array(["good great fine"])), clf.predict_proba([f]))
    assert clf.predict_proba([("good", "fine")]).shape == (1, 2)  # a pair, rendered with a separator patch
    for bad, match in [("a single text", "wrap it in a list"), ([3], r"X\[0\] is int"), ({"a": 1}, "list of texts"),
                       ([tmp_path / "missing.txt"], "cannot read"), ([], "no texts")]:
        with pytest.raises(InputError, match=match):
            clf.predict(bad)
    with pytest.raises(InputError, match="pairs need input='pixels'"):
        text_clf(input="bytes").fit([("a", "b"), ("c", "d")], [0, 1])


def test_fit_on_a_dataset():
    from multiseq.tasks import InMemoryDataset

    data = InMemoryDataset(TEXTS, [int(label == "pos") for label in LABELS])
    clf = text_clf(input="bytes").fit(data)
    assert list(clf.classes_) == [0, 1] and clf.score(TEXTS, [int(label == "pos") for label in LABELS]) >= 0.9
    with pytest.raises(InputError, match="needs labels y"):
        text_clf().fit(TEXTS)


def test_fit_errors():
    with pytest.raises(InputError, match="two classes"):
        text_clf().fit(["a", "b"], [1, 1])
    with pytest.raises(InputError, match="one label per input"):
        text_clf().fit(["a", "b"], [1, 0, 1])
    with pytest.raises(ConfigError, match="input must be one of"):
        text_clf(input="tokens").fit(["a", "b"], [1, 0])
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        text_clf(model="nope").fit(["a", "b"], [1, 0])
    with pytest.raises(NotFittedError):
        text_clf().predict(["a"])


def test_load_refuses_other_files(tmp_path, fitted_pixels):
    plain = save_model(multiseq.create_model("local_bytes_tiny", width=32, depth=1), tmp_path / "plain.safetensors")
    assert list(TextClassifier.load(plain).classes_) == [0, 1]  # a bare model file: classes are its indices
    with pytest.raises(CheckpointError, match="not a ImageClassifier"):
        ImageClassifier.load(plain)
    listops = save_model(multiseq.create_model("attention_lra_listops", width=32, depth=1), tmp_path / "lo.safetensors")
    with pytest.raises(CheckpointError, match="not a saved classifier"):
        TextClassifier.load(listops)
    path = fitted_pixels.save(tmp_path / "clf.safetensors")
    with pytest.raises(CheckpointError, match="not a ImageClassifier"):
        ImageClassifier.load(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        TextClassifier.load(path)


def _images(n: int, seed: int = 0):
    """Bright images (class 1) and dark ones (class 0), 8x8 RGB uint8."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(0, 100, (n, 8, 8, 3)) + 150 * y[:, None, None, None]
    return x.astype(np.uint8), y


@pytest.mark.parametrize("input", ["patches", "pixels"])
def test_image_classifier(input, tmp_path, capfd):
    X, y = _images(16)
    clf = ImageClassifier(input=input, image_size=8, patch_size=4, steps=20, batch_size=8, lr=3e-3,
                          model_options=TINY, progress=True).fit(X, y)
    assert "train" in capfd.readouterr().err  # a tqdm progress bar during fit
    assert clf.score(X, y) >= 0.9
    pil = [Image.fromarray(a) for a in X[:4]]
    files = []
    for i, im in enumerate(pil):
        im.save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    expected = clf.predict_proba(X[:4])
    np.testing.assert_allclose(clf.predict_proba(pil), expected, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba([str(f) for f in files]), expected, atol=1e-6)
    same = ImageClassifier.load(clf.save(tmp_path / "img.safetensors"))
    np.testing.assert_array_equal(same.predict_proba(X[:4]), expected)
    assert same.get_params() == clf.get_params()
    with pytest.raises(InputError, match=r"X\[0\] is dict"):
        clf.predict([{}])
    assert cross_val_score(clone(clf).set_params(steps=2, progress=False), X, y, cv=2).shape == (2,)


# ---------------------------------------------------------------------------------------------- labels (item 9)


@pytest.mark.parametrize(
    "y, match",
    [
        ([0, 1, float("nan")] * 4, "NaN"),
        ([0, "a", 1] * 4, "Mix of label input types"),
        ([0, None, 1] * 4, "None"),
        (np.linspace(0, 1, 12), "Unknown label type.*continuous"),
        (np.eye(2, dtype=int)[[0, 1] * 6], "1-D|Unknown label type"),
        ([0, 1] * 5, "one label per input"),
        ("ab" * 6, "1-D sequence"),
    ],
)
def test_labels_are_validated_like_scikit_learn(y, match):
    with pytest.raises(ValueError, match=match):
        text_clf(input="bytes", steps=1).fit(TEXTS, y)


def test_label_kinds_that_are_accepted_and_predict_log_proba():
    clf = text_clf(input="bytes", steps=2).fit(TEXTS, [1.0, 0.0] * 6)  # integral floats: binary
    assert clf.classes_.tolist() == [0.0, 1.0]
    logp = clf.predict_log_proba(TEXTS[:3])
    np.testing.assert_allclose(np.exp(logp), clf.predict_proba(TEXTS[:3]), rtol=1e-6)
    clf = text_clf(input="bytes", steps=1).fit(TEXTS, [True, False] * 6)
    assert clf.classes_.tolist() == [False, True]


def test_estimator_tags():
    from sklearn.utils import get_tags

    t, i = get_tags(TextClassifier()), get_tags(ImageClassifier())
    assert t.estimator_type == "classifier" and t.input_tags.string and not t.input_tags.two_d_array
    assert i.input_tags.three_d_array and not i.input_tags.two_d_array and t.target_tags.required


# ----------------------------------------------------------------------------------------- class names (item 11)


def test_class_names_survive_fit_save_cli_and_run_dirs(tmp_path, capsys):
    from multiseq.cli import main
    from multiseq.tasks import InMemoryDataset

    # fit(task dataset) takes the task's names, in the task's order
    named = InMemoryDataset(TEXTS, [int(label == "pos") for label in LABELS], label_names=["neg", "pos"])
    clf = text_clf(input="bytes", steps=25).fit(named)
    assert clf.classes_.tolist() == ["neg", "pos"] and set(clf.predict(TEXTS)) <= {"neg", "pos"}
    # `multiseq predict` on a saved TextClassifier prints the names
    path = clf.save(tmp_path / "clf.safetensors")
    capsys.readouterr()
    assert main(["predict", str(path), "good great fine", "bad awful poor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1].split()[0] for line in out] == clf.predict(["good great fine", "bad awful poor"]).tolist()
    # a CLI-trained run loads as a TextClassifier with the task's names
    run = tmp_path / "run"
    assert main(["train", "--task", "multiseq.tasks.toy:count_task", "--task-option", "length=24", "--task-option", "n=16",
                 "--model", "local_bytes_tiny", "--model-option", "width=16", "--model-option", "depth=1",
                 "--model-option", 'adapter={"max_length": 24}', "--steps", "1", "--batch-size", "8",
                 "--val-split", "none", "--out", str(run), "--quiet"]) == 0
    for where in (run, run / "model.safetensors"):
        loaded = TextClassifier.load(where)
        assert loaded.classes_.tolist() == ["b>=a", "a>b"] and loaded.model_.config.adapter.kind == "bytes"
        assert set(loaded.predict(["aaaab", "bbbba"])) <= {"b>=a", "a>b"}


def test_image_classifier_names_in_cli_predict(tmp_path, capsys):
    from multiseq.cli import main

    X, y = _images(8)
    clf = ImageClassifier(input="patches", image_size=8, patch_size=4, steps=2, batch_size=8, model_options=TINY,
                          progress=False).fit(X, np.array(["dark", "bright"])[y])
    Image.fromarray(X[0]).save(tmp_path / "a.png")
    capsys.readouterr()
    assert main(["predict", str(clf.save(tmp_path / "img.safetensors")), str(tmp_path / "a.png"), "--json"]) == 0
    import json

    rec = json.loads(capsys.readouterr().out)
    assert rec["label"] == clf.predict(X[:1])[0] and rec["label"] in ("dark", "bright")
    assert ImageClassifier.load(tmp_path / "img.safetensors").classes_.tolist() == ["bright", "dark"]


def test_progress_false_prints_nothing(capfd):
    text_clf(input="bytes", steps=3).fit(TEXTS, LABELS)
    out, err = capfd.readouterr()
    assert out == "" and err == ""

"""High-level classifiers with scikit-learn's estimator conventions.

    from multiseq import TextClassifier
    clf = TextClassifier(model="s4d", input="pixels").fit(texts, labels)     # rendered text, PIXEL style
    clf.predict(["a new review"]); clf.save("clf.safetensors"); TextClassifier.load("clf.safetensors")

`TextClassifier` reads texts as UTF-8 bytes (`input="bytes"`) or as rendered patches (`input="pixels"`);
`ImageClassifier` reads images as ViT patches (`input="patches"`) or as pixel sequences (`input="pixels"`).
Both follow scikit-learn's rules (constructor arguments stored as given, fitted state in `*_` attributes), so
`sklearn.base.clone`, `Pipeline`, `cross_val_score` and `GridSearchCV` work. Training is `multiseq.train.fit`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiseq.checkpoint import load_model, read_checkpoint, resolve_model_file, save_model
from multiseq.config import AdapterConfig, ModelConfig
from multiseq.errors import CheckpointError, ConfigError, InputError
from multiseq.models import get_model_config, list_models

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"multiseq.TextClassifier / ImageClassifier follow scikit-learn's conventions and need it ({e}); "
        f"install it with `pip install 'multiseq[sklearn]'`"
    ) from None

__all__ = ["ImageClassifier", "TextClassifier"]

FORMAT = "multiseq.estimator/1"


class _SequenceClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit / predict / save / load. Subclasses give the adapter and the input checks."""

    _adapters: dict[str, str] = {}  # input -> adapter name used to find presets
    _input_kind = ""  # "string" or "image": scikit-learn's input tags

    # -- subclass hooks ------------------------------------------------------------------------------------------
    def _adapter_config(self) -> AdapterConfig:  # pragma: no cover - abstract
        raise NotImplementedError

    def _prepare(self, X: Any) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- model ---------------------------------------------------------------------------------------------------
    def _model_config(self, num_classes: int) -> ModelConfig:
        if self.input not in self._adapters:
            raise ConfigError(f"input must be one of {tuple(self._adapters)}, got {self.input!r}")
        adapter = self._adapter_config()
        if isinstance(self.model, ModelConfig):
            base = self.model
        elif isinstance(self.model, str) and self.model in list_models():
            base = get_model_config(self.model)
        elif isinstance(self.model, str):
            candidates = [f"{self.model}_{a}_{self.size}" for a in (self._adapters[self.input], *self._adapters.values())]
            name = next((c for c in candidates if c in list_models()), None)
            if name is None:
                families = sorted({n.rsplit("_", 2)[0] for n in list_models(f"*_{self._adapters[self.input]}_*")})
                raise ConfigError(
                    f"unknown model {self.model!r} for size {self.size!r}: give a block family "
                    f"({', '.join(families)}), a preset name (multiseq.list_models()), or a ModelConfig"
                )
            base = get_model_config(name)
        else:
            raise ConfigError(f"model must be a family or preset name or a ModelConfig, got {type(self.model).__name__}")
        return base.replace(adapter=adapter, num_classes=num_classes, **(self.model_options or {}))

    # -- scikit-learn API ----------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> _SequenceClassifier:
        """Train on inputs `X` (see the class docstring) and labels `y` (any hashable values, 1-D).

        `X` may also be a dataset of `(input, label)` items (e.g. `multiseq.tasks.get("imdb")`) with `y=None`.

        Returns:
            self, with `model_` (the trained `SequenceModel`), `classes_` and `history_` (last metrics) set.
        """
        from multiseq.tasks.memory import InMemoryDataset
        from multiseq.train import TrainConfig
        from multiseq.train import fit as train_fit

        names = None
        if y is None:
            X, y, names = _from_dataset(X)
        inputs = self._prepare(X)
        if names is not None:  # a task's classes, in the task's order, named
            classes, y_idx = np.asarray(names), np.asarray(y, dtype=np.int64)
            present = np.unique(y_idx)
        else:
            y_arr = check_labels(y, len(inputs))
            classes, y_idx = np.unique(y_arr, return_inverse=True)
            present = classes
        if len(inputs) == 0:
            raise InputError("fit needs at least one sample, got 0 samples")
        if len(present) < 2:
            shown = classes[present].tolist() if names is not None else present.tolist()
            raise InputError(f"fit needs at least two classes in y, got one class: {shown}")
        config = self._model_config(len(classes))
        train = InMemoryDataset(inputs, y_idx.tolist(), num_classes=len(classes), task=type(self).__name__,
                                label_names=[str(c) for c in classes])
        train_config = TrainConfig(
            steps=self.steps,
            epochs=None if self.steps is not None else self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=self.seed,
            num_workers=self.num_workers,
            log_every=10 if self.progress else 0,  # progress=False: silent (the trainer's plain lines are for logs)
        )
        # progress=False means silent here; the trainer's plain log lines (its progress=False mode, for log files)
        # would otherwise still print the final step.
        if not isinstance(self.pretrain_steps, (int, np.integer)) or isinstance(self.pretrain_steps, bool) \
                or self.pretrain_steps < 0:
            raise ConfigError(f"pretrain_steps must be an int >= 0 (0 = no self-pretraining), got "
                              f"{self.pretrain_steps!r}")
        with contextlib.nullcontext() if self.progress else contextlib.redirect_stdout(io.StringIO()):
            if self.pretrain_steps:
                result = self._pretrain_then_fit(config, train, train_config)
            else:
                result = train_fit(config, train, config=train_config, progress=self.progress, device=self.device)
        self.model_ = result.model.eval()
        self.classes_ = classes
        self.history_ = result.metrics
        return self

    def _pretrain_then_fit(self, config: ModelConfig, train: Any, train_config: Any) -> Any:
        """Self-pretrain the body for `pretrain_steps` on the training inputs, then fine-tune with a fresh head."""
        import dataclasses
        import tempfile

        from multiseq.train import fit as train_fit
        from multiseq.train import pretrain

        stage = dataclasses.replace(train_config, steps=int(self.pretrain_steps), epochs=None)
        with tempfile.TemporaryDirectory(prefix="multiseq-pretrain-") as tmp:
            pre = pretrain(config, train, config=stage, out=tmp, progress=self.progress, device=self.device)
            self.pretrain_history_ = pre.metrics
            return train_fit(None, train, config=train_config, init=tmp, progress=self.progress, device=self.device)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) or load(path) first")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities `(N, n_classes)`, columns in the order of `classes_`."""
        from multiseq.train import predict

        self._check_fitted()
        inputs = self._prepare(X)
        _, probs = predict(self.model_, inputs, batch_size=self.batch_size)
        return probs.numpy()

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities `(N, n_classes)`, columns in the order of `classes_` (log 0 is -inf)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels `(N,)`, values from `classes_`."""
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __sklearn_tags__(self) -> Any:
        # Inputs are texts or images, not numeric 2-D arrays; labels are class labels (not multi-output).
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = self._input_kind == "string"
        tags.input_tags.three_d_array = self._input_kind == "image"
        tags.target_tags.required = True
        tags.classifier_tags.multi_label = False
        tags.non_deterministic = False  # seeded: the same data and seed give the same model on CPU
        return tags

    # -- persistence -----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """One file (`.safetensors`): weights, the model config (the renderer config inside it), the estimator's
        parameters and classes; a rendering model's file also records its rendering environment (font hashes,
        library versions: `multiseq.checkpoint`). Written atomically."""
        self._check_fitted()
        params = self.get_params(deep=False)
        if isinstance(params.get("model"), ModelConfig):
            params["model"] = {"__model_config__": params["model"].to_dict()}
        meta = {
            # The same key the trainer writes: `multiseq predict` and `eval` print these names.
            "class_names": json.dumps([str(c) for c in self.classes_.tolist()]),
            "estimator": json.dumps({"format": FORMAT, "class": type(self).__name__, "params": params,
                                     "classes": self.classes_.tolist(), "history": self.history_}, default=str),
        }
        return save_model(self.model_, path, extra_metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike, device: Any = None) -> _SequenceClassifier:
        """Rebuild a fitted classifier (checksums verified) from a file written by `save`, or from a model file or
        run directory written by `multiseq train` / `multiseq.train.fit` (its model config and class names)."""
        path = resolve_model_file(path)
        _, meta = read_checkpoint(path)
        if "estimator" not in meta:
            return _from_model_file(cls, path, meta, device)
        try:
            info = json.loads(meta["estimator"])
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: its estimator metadata is not valid JSON") from None
        if info.get("format") != FORMAT or info.get("class") not in _CLASSES:
            raise CheckpointError(f"{path} holds an unknown estimator {info.get('class')!r} ({info.get('format')})")
        klass = _CLASSES[info["class"]]
        if not issubclass(klass, cls):
            raise CheckpointError(f"{path} holds a {info['class']}, not a {cls.__name__}")
        params = dict(info["params"])
        if isinstance(params.get("model"), dict) and "__model_config__" in params["model"]:
            params["model"] = ModelConfig.from_dict(params["model"]["__model_config__"])
        for key in ("image_size",):
            if isinstance(params.get(key), list):
                params[key] = tuple(params[key])
        est = klass(**params)
        est.model_ = load_model(path, device=device).eval()
        est.classes_ = np.asarray(info["classes"])
        est.history_ = info.get("history", {})
        return est


class TextClassifier(_SequenceClassifier):
    """Text classification from raw strings.

    Args:
        model: a block family (`s4d`, `local`, `attention`, `mega`, ...; combined with `size` and the input into
            a preset such as `s4d_render_tiny`), a preset name, or a `ModelConfig`. The adapter always follows
            `input`. The default, S4D, is the fastest of the long-sequence families on CPU.
        input: `pixels` (PIXEL-style rendering, 529 patches of 16x16) or `bytes` (UTF-8 bytes, LRA style).
        size: preset size when `model` is a family (`tiny`, `small`, ...).
        max_length: bytes (default 1024) or patches (default 529) per text; longer texts are truncated.
        render_config: renderer configuration for `pixels` (bundled name or JSON path).
        rendering: `words` (each word starts on a patch boundary; learns much faster from scratch), `bigrams`
            (two characters per patch, Lotz et al. 2023) or `continuous` (PIXEL's one run of text).
        epochs, steps: training length (`steps`, when given, wins).
        pretrain_steps: self-pretraining steps on the training inputs before fine-tuning (masked modelling,
            `multiseq.train.pretrain`; the body carries over, the head is fresh). 0 trains from scratch.
        batch_size, lr, weight_decay, seed: optimisation (AdamW, warm-up then cosine decay).
        device: `None` (CUDA when present), `cpu`, `cuda`, ...
        progress: tqdm progress bars during fit.
        num_workers: DataLoader workers (rendering runs there when > 0).
        model_options: further `ModelConfig` overrides (e.g. `{"width": 128, "depth": 4}`).

    Inputs `X`: a list (or 1-D array / Series) of `str`, `pathlib.Path` text files (read as UTF-8), or, for
    `pixels`, `(str, str)` pairs rendered with a separator patch.
    """

    _adapters = {"pixels": "render", "bytes": "bytes"}
    _input_kind = "string"

    def __init__(
        self,
        model: str | ModelConfig = "s4d",
        input: str = "pixels",
        size: str = "tiny",
        max_length: int | None = None,
        render_config: str = "pixel",
        rendering: str = "words",
        epochs: float = 3.0,
        steps: int | None = None,
        pretrain_steps: int = 0,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        seed: int = 0,
        device: str | None = None,
        progress: bool = True,
        num_workers: int = 0,
        model_options: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.input, self.size, self.max_length = model, input, size, max_length
        self.render_config, self.epochs, self.steps, self.batch_size = render_config, epochs, steps, batch_size
        self.pretrain_steps = pretrain_steps
        self.rendering = rendering
        self.lr, self.weight_decay, self.seed, self.device = lr, weight_decay, seed, device
        self.progress, self.num_workers, self.model_options = progress, num_workers, model_options

    def _adapter_config(self) -> AdapterConfig:
        if self.input == "bytes":
            return AdapterConfig("bytes", max_length=self.max_length or 1024)
        from renderers import RenderError, load_config

        try:
            full = load_config(self.render_config).to_dict()
        except RenderError as e:
            raise ConfigError(str(e)) from None
        # The whole renderer config travels inside the model config, so a saved model renders the same way
        # even if the bundled configuration changes later.
        full.pop("max_seq_length")
        options = {"config": "pixel", "overrides": full, "rendering": self.rendering}
        return AdapterConfig("render", max_length=self.max_length or 529, options=options)

    def _prepare(self, X: Any) -> list[Any]:
        items = _as_list(X, "texts")
        out = []
        for i, item in enumerate(items):
            if isinstance(item, (str, np.str_)):
                out.append(str(item))
            elif isinstance(item, Path):
                try:
                    out.append(item.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError) as e:
                    raise InputError(f"X[{i}]: cannot read text file {item}: {e}") from None
            elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(t, str) for t in item):
                if self.input != "pixels":
                    raise InputError(f"X[{i}] is a text pair; pairs need input='pixels' (rendered with a separator)")
                out.append(item)
            else:
                raise InputError(
                    f"X[{i}] is {type(item).__name__}; TextClassifier takes str texts, pathlib.Path text files "
                    f"or (str, str) pairs"
                )
        return out


class ImageClassifier(_SequenceClassifier):
    """Image classification.

    Args:
        model: a block family (`attention`, `local`, `s4d`, ...), a preset name, or a `ModelConfig`.
        input: `patches` (ViT patches through timm's `PatchEmbed`) or `pixels` (one gray pixel per token).
        size: preset size when `model` is a family.
        image_size: `(H, W)` (or one int) every image is resized to.
        patch_size: side of a patch (`patches`).
        color: `rgb` or `gray` (`patches`; `pixels` is always gray, LRA's rule).
        other arguments: as `TextClassifier`.

    Inputs `X`: a list of PIL images, numpy arrays `(H, W[, C])`, tensors `(C, H, W)` or image file paths
    (`str` or `pathlib.Path`); or one array `(N, H, W[, C])` / tensor `(N, C, H, W)`.
    """

    _adapters = {"patches": "patches", "pixels": "pixels"}
    _input_kind = "image"

    def __init__(
        self,
        model: str | ModelConfig = "attention",
        input: str = "patches",
        size: str = "tiny",
        image_size: int | tuple[int, int] = (32, 32),
        patch_size: int = 4,
        color: str = "rgb",
        epochs: float = 3.0,
        steps: int | None = None,
        pretrain_steps: int = 0,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        seed: int = 0,
        device: str | None = None,
        progress: bool = True,
        num_workers: int = 0,
        model_options: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.input, self.size, self.image_size = model, input, size, image_size
        self.patch_size, self.color, self.epochs, self.steps = patch_size, color, epochs, steps
        self.pretrain_steps = pretrain_steps
        self.batch_size, self.lr, self.weight_decay, self.seed = batch_size, lr, weight_decay, seed
        self.device, self.progress, self.num_workers, self.model_options = device, progress, num_workers, model_options

    def _size(self) -> list[int]:
        size = self.image_size
        size = [size, size] if isinstance(size, int) else list(size)
        if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
            raise ConfigError(f"image_size must be an int or (H, W), got {self.image_size!r}")
        return size

    def _adapter_config(self) -> AdapterConfig:
        H, W = self._size()
        if self.input == "pixels":
            return AdapterConfig("pixels", max_length=H * W, options={"image_size": [H, W], "resize": True})
        p = self.patch_size
        n = -(-H // p) * -(-W // p)
        return AdapterConfig(
            "patches", max_length=n, options={"image_size": [H, W], "patch_size": p, "color": self.color}
        )

    def _prepare(self, X: Any) -> list[Any]:
        from PIL import Image

        if isinstance(X, np.ndarray) and X.ndim in (3, 4) and X.dtype != object:
            return list(X)
        if isinstance(X, torch.Tensor) and X.dim() == 4:
            return list(X)
        items = _as_list(X, "images")
        for i, item in enumerate(items):
            if not isinstance(item, (Image.Image, np.ndarray, torch.Tensor, str, Path)):
                raise InputError(
                    f"X[{i}] is {type(item).__name__}; ImageClassifier takes PIL images, numpy arrays, tensors "
                    f"or image file paths"
                )
        return [str(item) if isinstance(item, Path) else item for item in items]


def _from_dataset(data: Any) -> tuple[list[Any], list[Any], list[str] | None]:
    """A dataset of `(input, label index)` items -> (inputs, labels, class names or None).

    The names are the dataset's `label_names` when it has real ones (not just "0", "1", ...)."""
    if isinstance(data, (list, tuple, np.ndarray, str)) or not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise InputError("this classifier requires y to be passed, but the target y is None: fit needs labels y, "
                         "or a dataset of (input, label) items as X (e.g. multiseq.tasks.get(...))")
    if getattr(data, "pair", False):
        raise InputError("this dataset holds document pairs (a dual-encoder task); train it with multiseq.train.fit")
    items = [data[i] for i in range(len(data))]
    inputs, labels = [x for x, _ in items], [label for _, label in items]
    names = getattr(data, "label_names", None)
    names = [str(n) for n in names] if names is not None else None
    if not names or names == [str(k) for k in range(len(names))]:
        return inputs, labels, None
    if not all(isinstance(v, (int, np.integer)) and 0 <= v < len(names) for v in labels):
        raise InputError(f"the dataset names {len(names)} classes ({names[:5]}...) but its labels are not class "
                         f"indices 0..{len(names) - 1}")
    return inputs, labels, names


def check_labels(y: Any, n: int) -> np.ndarray:
    """Validate class labels the way scikit-learn does (`type_of_target`, `unique_labels`).

    Args:
        y: (n,) labels: ints, strings, bools or integral floats; one type, no None, NaN or infinity.
        n: number of inputs.

    Returns:
        y as a 1-D numpy array.

    Raises:
        InputError (a ValueError): shape, None, NaN/inf, mixed strings and numbers, or continuous / multi-output
        targets ("Unknown label type", scikit-learn's wording).
    """
    from sklearn.utils.multiclass import type_of_target, unique_labels

    values = list(y.tolist() if hasattr(y, "tolist") and not isinstance(y, (str, bytes)) else y) \
        if not isinstance(y, (str, bytes)) and hasattr(y, "__len__") else None
    if values is None:
        raise InputError(f"y must be a 1-D sequence of class labels, got {type(y).__name__}")
    if any(v is None for v in values):
        raise InputError("y contains None; every input needs a class label")
    strings = sum(isinstance(v, (str, np.str_)) for v in values)
    if 0 < strings < len(values):
        raise InputError("invalid class labels y: Mix of label input types (string and number); use one type")
    y_arr = np.asarray(values)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:  # a column vector, as scikit-learn accepts it (with a warning)
        from sklearn.exceptions import DataConversionWarning

        warnings.warn("A column-vector y was passed when a 1d array was expected; it was flattened to (n,)",
                      DataConversionWarning, stacklevel=3)
        y_arr, values = y_arr.ravel(), [v[0] for v in values]
    if y_arr.ndim != 1 or len(y_arr) != n:
        raise InputError(f"y must be 1-D with one label per input: {n} inputs, y of shape {y_arr.shape}")
    if y_arr.dtype.kind in "fc" and not np.isfinite(y_arr).all():
        raise InputError("y contains NaN or infinity; class labels must be finite")
    try:
        kind = type_of_target(y_arr, input_name="y")
    except ValueError as e:
        raise InputError(f"invalid class labels y: {e}") from None
    if kind not in ("binary", "multiclass"):
        raise InputError(f"Unknown label type: y is {kind!r}; a classifier needs class labels (binary or "
                         f"multiclass), e.g. ints or strings")
    try:
        unique_labels(values)  # refuses a mix of strings and numbers
    except ValueError as e:
        raise InputError(f"invalid class labels y: {e}") from None
    return np.asarray(values)


def _from_model_file(cls: type, path: Path, meta: dict[str, str], device: Any) -> _SequenceClassifier:
    """A classifier around a model file written by the trainer (no estimator metadata): its config and classes."""
    model = load_model(path, device=device).eval()
    adapter = model.config.adapter
    kind = {"bytes": TextClassifier, "render": TextClassifier, "patches": ImageClassifier, "pixels": ImageClassifier}
    klass = kind.get(adapter.kind)
    if klass is None or model.is_dual:
        raise CheckpointError(f"{path} holds a model reading {adapter.kind!r} inputs{' in pairs' if model.is_dual else ''}; "
                              f"not a saved classifier (load it with multiseq.load_model)")
    if not issubclass(klass, cls):
        raise CheckpointError(f"{path} holds a model for a {klass.__name__}, not a {cls.__name__}")
    opts = adapter.options or {}
    params: dict[str, Any] = {"model": model.config, "progress": False}
    if klass is TextClassifier:
        params.update(input="bytes" if adapter.kind == "bytes" else "pixels", max_length=adapter.max_length)
        if adapter.kind == "render":
            params["rendering"] = opts.get("rendering", "words")
    else:
        size = opts.get("image_size", [32, 32])
        params.update(input=adapter.kind, image_size=tuple(size))
        if adapter.kind == "patches":
            params.update(patch_size=opts.get("patch_size", 4), color=opts.get("color", "rgb"))
    est = klass(**params)
    est.model_ = model
    try:
        names = json.loads(meta.get("class_names", "null"))
    except json.JSONDecodeError:
        names = None
    n = model.config.num_classes
    est.classes_ = np.asarray(names if isinstance(names, list) and len(names) == n else list(range(n)))
    est.history_ = {}
    return est


def _as_list(X: Any, what: str) -> list[Any]:
    if isinstance(X, (str, bytes, Path)):
        raise InputError(f"X must be a list of {what}, got a single {type(X).__name__}; wrap it in a list")
    if isinstance(X, np.ndarray):
        if X.ndim != 1:
            raise InputError(f"X as an array of {what} must be 1-D, got shape {X.shape}")
        return X.tolist()
    if hasattr(X, "tolist") and not isinstance(X, torch.Tensor):  # pandas Series
        return list(X.tolist())
    if isinstance(X, (list, tuple)):
        if not X:
            raise InputError(f"X holds no {what}")
        return list(X)
    raise InputError(f"X must be a list of {what}, got {type(X).__name__}")


_CLASSES = {"TextClassifier": TextClassifier, "ImageClassifier": ImageClassifier}

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

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiseq.checkpoint import load_model, read_checkpoint, save_model
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

        if y is None:
            X, y = _from_dataset(X)
        inputs = self._prepare(X)
        y_arr = np.asarray(y)
        if y_arr.ndim != 1 or len(y_arr) != len(inputs):
            raise InputError(f"y must be 1-D with one label per input: {len(inputs)} inputs, y of shape {y_arr.shape}")
        classes, y_idx = np.unique(y_arr, return_inverse=True)
        if len(classes) < 2:
            raise InputError(f"fit needs at least two classes in y, got {classes.tolist()}")
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
        )
        result = train_fit(config, train, config=train_config, progress=self.progress, device=self.device)
        self.model_ = result.model.eval()
        self.classes_ = classes
        self.history_ = result.metrics
        return self

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

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels `(N,)`, values from `classes_`."""
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    # -- persistence -----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """One file (`.safetensors`): weights, the model config (the renderer config inside it), the estimator's
        parameters and classes, and the font files used (names and sizes). Written atomically."""
        self._check_fitted()
        params = self.get_params(deep=False)
        if isinstance(params.get("model"), ModelConfig):
            params["model"] = {"__model_config__": params["model"].to_dict()}
        meta = {
            "estimator": json.dumps({"format": FORMAT, "class": type(self).__name__, "params": params,
                                     "classes": self.classes_.tolist(), "history": self.history_}, default=str),
        }
        adapter = self.model_.adapter
        if hasattr(adapter, "render_config"):
            meta["font_files"] = json.dumps(_font_files(adapter.render_config))
        return save_model(self.model_, path, extra_metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike, device: Any = None) -> _SequenceClassifier:
        """Rebuild a fitted classifier saved with `save` (checksums verified)."""
        _, meta = read_checkpoint(path)
        try:
            info = json.loads(meta["estimator"])
        except (KeyError, json.JSONDecodeError):
            raise CheckpointError(f"{path} is a model file but not a saved classifier (no estimator metadata)") from None
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
        adapter = est.model_.adapter
        if "font_files" in meta and hasattr(adapter, "render_config"):
            saved = [tuple(f) for f in json.loads(meta["font_files"])]
            if saved != [tuple(f) for f in _font_files(adapter.render_config)]:
                warnings.warn(
                    f"{path} was trained with other font files ({saved}); rendered pixels may differ",
                    stacklevel=2,
                )
        return est


def _font_files(render_config: Any) -> list[list[Any]]:
    try:
        return [[p.name, p.stat().st_size] for p in render_config.font_paths()]
    except Exception as e:  # a missing font is reported when rendering; here it only makes the record empty
        return [["unavailable", str(e)[:200]]]


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
        rendering: `words` (each word starts on a patch boundary; learns much faster from scratch) or
            `continuous` (PIXEL's one run of text).
        epochs, steps: training length (`steps`, when given, wins).
        batch_size, lr, weight_decay, seed: optimisation (AdamW, warm-up then cosine decay).
        device: `None` (CUDA when present), `cpu`, `cuda`, ...
        progress: tqdm progress bars during fit.
        num_workers: DataLoader workers (rendering runs there when > 0).
        model_options: further `ModelConfig` overrides (e.g. `{"width": 128, "depth": 4}`).

    Inputs `X`: a list (or 1-D array / Series) of `str`, `pathlib.Path` text files (read as UTF-8), or, for
    `pixels`, `(str, str)` pairs rendered with a separator patch.
    """

    _adapters = {"pixels": "render", "bytes": "bytes"}

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


def _from_dataset(data: Any) -> tuple[list[Any], list[Any]]:
    """A dataset of `(input, label)` items -> (inputs, labels)."""
    if isinstance(data, (list, tuple, np.ndarray, str)) or not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise InputError("fit needs labels y, or a dataset of (input, label) items as X (e.g. multiseq.tasks.get(...))")
    if getattr(data, "pair", False):
        raise InputError("this dataset holds document pairs (a dual-encoder task); train it with multiseq.train.fit")
    items = [data[i] for i in range(len(data))]
    return [x for x, _ in items], [label for _, label in items]


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

"""Accuracy of a predictor under every noise type and severity, with the drop from clean and 95% intervals.

    result = sweep(model, multiseq.tasks.get("text", split="val"), noises="all", seed=0)
    result["rows"]  # [{"noise", "severity", "accuracy", "accuracy_low", "accuracy_high",
                    #   "drop", "drop_low", "drop_high", "n", "correct"}, ...]

The predictor is a `SequenceModel` (evaluated through its own adapter, in batches), a fitted `TextClassifier` /
`ImageClassifier`, or any object with `predict(list_of_raw_inputs) -> labels` (a fitted scikit-learn `Pipeline`
such as `multiseq.baselines.tfidf_pipeline()`); predictions are compared with the dataset's labels by equality.

Text tasks (inputs `str` / `bytes`, or pairs of them) get the ten text attacks at severities 0.2, 0.5, 0.8; image
tasks (numpy / PIL / tensor images) get the image corruptions at severities 1 to 5. Each example is noised with a
seed derived from the sweep seed, the noise and the example's index, so every noised input can be regenerated.

Intervals (95%): the accuracy of a cell gets the Wilson score interval (`wilson`); the drop from clean gets a paired
percentile bootstrap over examples (`paired_bootstrap`): the same examples are resampled for the clean and the
noised predictions (the two are strongly correlated, which the paired resampling keeps), with `bootstrap`
resamples drawn from a generator seeded by the sweep seed, and the same resamples for every cell, so the numbers
are reproducible. Each row also keeps the per-example outcomes (`correct`, a string of 0/1 in dataset order; the
clean ones in `clean_correct`), so any other comparison (e.g. between two models' drops) can be computed later.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from multiseq.errors import ConfigError
from multiseq.robustness.image_noise import CORRUPTIONS, corrupt
from multiseq.robustness.text_noise import ATTACKS, LEVELS, attack

IMAGE_SEVERITIES = (1, 2, 3, 4, 5)
Z95 = 1.959963984540054


def modality(data: Any) -> str:
    """`text` or `image`, from the dataset's first input."""
    if len(data) == 0:
        raise ConfigError("cannot sweep an empty dataset")
    x, _ = data[0]
    if isinstance(x, tuple):
        x = x[0]
    if isinstance(x, (str, bytes, bytearray)):
        return "text"
    if isinstance(x, (np.ndarray, Image.Image)) or hasattr(x, "shape"):
        return "image"
    raise ConfigError(f"cannot tell the modality of inputs of type {type(x).__name__}; expected text or images")


def _seed(seed: int, noise: str, severity: float, index: int) -> int:
    return zlib.crc32(f"{seed}/{noise}/{severity}/{index}".encode())


class NoisyDataset:
    """A view of a dataset whose inputs are noised on access; labels and attributes are the original ones."""

    def __init__(self, data: Any, noise: str, severity: float, seed: int = 0) -> None:
        self.data, self.noise, self.severity, self.seed = data, noise, severity, seed
        self.kind = modality(data)

    def __len__(self) -> int:
        return len(self.data)

    def noised(self, x: Any, index: int, part: int = 0) -> Any:
        s = _seed(self.seed, self.noise, self.severity, 2 * index + part)
        if self.kind == "text":
            text = x.decode("utf-8", errors="replace") if isinstance(x, (bytes, bytearray)) else x
            return attack(text, self.noise, float(self.severity), seed=s)
        return corrupt(x, self.noise, int(self.severity), seed=s)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        x, y = self.data[i]
        if isinstance(x, tuple):
            return tuple(self.noised(part, i, k) for k, part in enumerate(x)), y
        return self.noised(x, i), y

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "data" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["data"], name)


def resolve_noises(kind: str, noises: str | Sequence[str]) -> list[str]:
    """`all`, a comma-separated string or a list -> validated noise names for the modality."""
    valid = ATTACKS if kind == "text" else CORRUPTIONS
    names = list(valid) if noises == "all" else (noises.split(",") if isinstance(noises, str) else list(noises))
    for n in names:
        if n not in valid:
            raise ConfigError(f"{n!r} is not a {kind} noise; valid: {', '.join(valid)}")
    return names


def resolve_severities(kind: str, severities: Sequence[float] | None) -> list[float]:
    if severities is None:
        return list(LEVELS if kind == "text" else IMAGE_SEVERITIES)
    out = [float(s) for s in severities]
    if kind == "text" and not all(0.0 <= s <= 1.0 for s in out):
        raise ConfigError(f"text severities lie in [0, 1] (standard {LEVELS}), got {out}")
    if kind == "image" and not all(s in IMAGE_SEVERITIES for s in out):
        raise ConfigError(f"image severities are integers 1 to 5, got {out}")
    return out


# -- intervals --------------------------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95% for the default z); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ConfigError(f"wilson needs 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_indices(n: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """`(resamples, n)` indices drawn with replacement from a generator seeded with `seed`."""
    if resamples < 1:
        raise ConfigError(f"bootstrap resamples must be >= 1, got {resamples}")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def paired_bootstrap(clean: Any, noisy: Any, resamples: int = 1000, seed: int = 0,
                     indices: np.ndarray | None = None, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of mean(clean) - mean(noisy) over examples resampled in pairs (per-example outcomes 0/1).

    `indices` (from `bootstrap_indices`) reuses the same resamples across cells; otherwise they are drawn from
    `seed`, so the same inputs always give the same interval."""
    a, b = np.asarray(clean, dtype=np.float64), np.asarray(noisy, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ConfigError(f"paired_bootstrap needs two equal-length, non-empty 1-D outcome vectors, got "
                          f"{a.shape} and {b.shape}")
    idx = bootstrap_indices(len(a), resamples, seed) if indices is None else indices
    diffs = (a - b)[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(diffs, [tail, 100 - tail])
    return float(lo), float(hi)


# -- predictors -------------------------------------------------------------------------------------------------


def _is_sequence_model(model: Any) -> bool:
    from multiseq.sequence_model import SequenceModel

    return isinstance(getattr(model, "module", model), SequenceModel)


def check_predictor(model: Any) -> str:
    """`sequence_model` or `predict`; anything else is refused with a clear error."""
    if _is_sequence_model(model):
        return "sequence_model"
    predict = getattr(model, "predict", None)
    if callable(predict) and not isinstance(model, type):
        try:  # an unfitted scikit-learn estimator is refused here rather than deep in the sweep
            from sklearn.base import BaseEstimator
            from sklearn.exceptions import NotFittedError
            from sklearn.utils.validation import check_is_fitted

            if isinstance(model, BaseEstimator):
                try:
                    check_is_fitted(model)
                except NotFittedError:
                    raise ConfigError(f"the {type(model).__name__} given to sweep is not fitted; fit it first") from None
        except ImportError:
            pass
        return "predict"
    raise ConfigError(
        f"sweep needs a predictor of raw inputs: a multiseq SequenceModel, a fitted TextClassifier/ImageClassifier, "
        f"or an object with predict(list_of_inputs) -> labels (e.g. a fitted scikit-learn Pipeline); got "
        f"{type(model).__name__}")


def _outcomes_sequence_model(model: Any, data: Any, batch_size: int, progress: bool) -> np.ndarray:
    import torch

    from multiseq.train.data import Collate, _check_model_fits, _forward
    from multiseq.train.evaluate import _autocast, _bar

    model = getattr(model, "module", model)
    device = next(model.parameters()).device
    _check_model_fits(model, data)
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False,
                                         collate_fn=Collate(model.adapter, model.is_dual))
    out, bar = [], _bar(len(data), "eval", progress, unit="ex")
    try:
        with torch.no_grad():
            for batch in loader:
                with _autocast(device, "auto"):
                    logits, y = _forward(model, batch, device)
                logits = logits.float()
                if not torch.isfinite(logits).all():
                    raise FloatingPointError("the model produced NaN/Inf logits during the sweep")
                out.append((logits.argmax(-1) == y).cpu().numpy())
                bar.update(len(y))
    finally:
        bar.close()
        model.train(was_training)
    return np.concatenate(out).astype(bool)


def _outcomes_predict(model: Any, data: Any, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(data), batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        pred = np.asarray(model.predict([x for x, _ in items]))
        if pred.shape[:1] != (len(items),):
            raise ConfigError(f"{type(model).__name__}.predict returned {pred.shape[0] if pred.ndim else 'a scalar'} "
                              f"predictions for {len(items)} inputs")
        out.append(np.asarray([p == y for p, (_, y) in zip(pred.tolist(), items)], dtype=bool))
    return np.concatenate(out)


def outcomes(model: Any, data: Any, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Per-example correctness (bool array in dataset order) of any predictor accepted by `sweep`."""
    if len(data) == 0:
        raise ConfigError("cannot evaluate on an empty dataset")
    if check_predictor(model) == "sequence_model":
        return _outcomes_sequence_model(model, data, batch_size, progress)
    return _outcomes_predict(model, data, batch_size)


def _bits(correct: np.ndarray) -> str:
    return "".join("1" if c else "0" for c in correct)


def sweep(
    model: Any,
    data: Any,
    noises: str | Sequence[str] = "all",
    severities: Sequence[float] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Evaluate a predictor (see the module docstring) on `data` clean and under each (noise, severity).

    Returns:
        `{"modality", "predictor", "clean_accuracy", "clean_low", "clean_high", "clean_correct", "n", "seed",
        "intervals", "rows": [{"noise", "severity", "accuracy", "accuracy_low", "accuracy_high", "drop",
        "drop_low", "drop_high", "n", "correct"}]}`; `*_low`/`*_high` bound the 95% intervals.
    """
    check_predictor(model)
    kind = modality(data)
    names = resolve_noises(kind, noises)
    levels = resolve_severities(kind, severities)
    n = len(data)
    clean = outcomes(model, data, batch_size, progress)
    idx = bootstrap_indices(n, bootstrap, seed)
    lo, hi = wilson(int(clean.sum()), n)
    rows = []
    for name in names:
        for sev in levels:
            c = outcomes(model, NoisyDataset(data, name, sev, seed), batch_size, progress)
            a_lo, a_hi = wilson(int(c.sum()), n)
            d_lo, d_hi = paired_bootstrap(clean, c, indices=idx)
            rows.append({"noise": name, "severity": sev, "accuracy": float(c.mean()), "accuracy_low": a_lo,
                         "accuracy_high": a_hi, "drop": float(clean.mean() - c.mean()), "drop_low": d_lo,
                         "drop_high": d_hi, "n": n, "correct": _bits(c)})
    return {
        "modality": kind, "predictor": type(getattr(model, "module", model)).__name__,
        "clean_accuracy": float(clean.mean()), "clean_low": lo, "clean_high": hi, "clean_correct": _bits(clean),
        "n": n, "seed": seed,
        "intervals": {"accuracy": "Wilson score, 95%",
                      "drop": f"paired percentile bootstrap over examples, 95%, {bootstrap} resamples, seed {seed}"},
        "rows": rows,
    }


# -- tables -----------------------------------------------------------------------------------------------------


def _ci(v: float, lo: float, hi: float, signed: bool = False) -> str:
    f = "+.3f" if signed else ".3f"
    return f"{format(v, f)} [{format(lo, f)}, {format(hi, f)}]"


def format_table(result: dict[str, Any], title: str = "") -> str:
    """A plain-text table of one sweep: one line per (noise, severity) with the accuracy and the drop from clean,
    each with its 95% interval."""
    lines = [title] if title else []
    nan = float("nan")
    clean = _ci(result["clean_accuracy"], result.get("clean_low", nan), result.get("clean_high", nan))
    lines.append(f"clean accuracy {clean} on {result['n']} examples")
    lines.append(f"{'noise':<18}{'severity':>9}  {'accuracy [95% CI]':<24}{'drop [95% CI]':<26}")
    for r in result["rows"]:
        acc = _ci(r["accuracy"], r.get("accuracy_low", nan), r.get("accuracy_high", nan))
        drop = _ci(r["drop"], r.get("drop_low", nan), r.get("drop_high", nan), signed=True)
        lines.append(f"{r['noise']:<18}{format(r['severity'], 'g'):>9}  {acc:<24}{drop:<26}")
    return "\n".join(lines)


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One markdown table for several sweeps over the same inputs (model label -> sweep result): a row per
    (noise, severity), for every model the accuracy and the drop from clean with their 95% intervals."""
    labels = list(results)
    head = "| noise | severity | " + " | ".join(f"{m} accuracy | {m} drop" for m in labels) + " |"
    sep = "|---|---:|" + "---:|---:|" * len(labels)
    first = next(iter(results.values()))
    clean = " | ".join(f"{_ci(r['clean_accuracy'], r['clean_low'], r['clean_high'])} | 0" for r in results.values())
    lines = [head, sep, f"| clean | 0 | {clean} |"]
    cells = {m: {(r["noise"], r["severity"]): r for r in res["rows"]} for m, res in results.items()}
    for r0 in first["rows"]:
        key = (r0["noise"], r0["severity"])
        parts = []
        for m in labels:
            r = cells[m].get(key)
            parts.append("n/a | n/a" if r is None else
                         f"{_ci(r['accuracy'], r['accuracy_low'], r['accuracy_high'])} | "
                         f"{_ci(r['drop'], r['drop_low'], r['drop_high'], signed=True)}")
        lines.append(f"| {key[0]} | {format(key[1], 'g')} | " + " | ".join(parts) + " |")
    n = {res["n"] for res in results.values()}
    notes = (f"\nAccuracy on {', '.join(map(str, sorted(n)))} examples; brackets: 95% intervals (accuracy: "
             f"{first['intervals']['accuracy']}; drop from clean: {first['intervals']['drop']}).\n")
    return "\n".join(lines) + "\n" + notes

"""Model files: safetensors weights, with the JSON config, the metadata and a sha256 in the header.

Format `multiseq.model/2`. The header's `__metadata__` holds `format`, `config` (the `ModelConfig` JSON),
optional `class_names` (a JSON list of strings, one per class), any extra metadata given to `save_model`, and
`sha256`: a digest over the tensors (names, dtypes, shapes, bytes) *and* every other metadata key and value, so an
edited config field (window 128 -> 138, causal, pooling), swapped class names or a flipped bit anywhere in the file
is refused. Writes are atomic (temp file in the same folder, fsync, rename), loads never unpickle, and a
truncated, corrupt, tampered or mismatched file is refused with a `CheckpointError` that says which and why.

Before anything is allocated, `load_model` checks the sizes in the header: limits on width, depth and length
(`MAX_WIDTH`, `MAX_DEPTH`, `MAX_LENGTH`), the layer count and final width against the tensors listed in the file,
and an estimate of the config's parameter count (from small builds of its layers, so vocabulary, heads, d_state,
feed-forward and head sizes all count) against the number of values the file holds. A file whose config asks for
more than its tensors hold is refused without building the model.

Files of the older format `multiseq.model/1` (digest over tensors only) are refused: their config and metadata
were never covered, so they cannot be trusted silently. If you trust such a file, convert it once with
`resave_legacy_model_file(path)`, which checks the old tensor digest and writes the current format.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from multiseq._io import atomic_write_bytes, fsync_dir
from multiseq.config import ModelConfig
from multiseq.errors import CheckpointError, ConfigError

FORMAT = "multiseq.model/2"
LEGACY_FORMATS = ("multiseq.model/1",)
RESERVED_KEYS = ("format", "config", "sha256")

# Limits checked on a file's config before anything is built (a hostile header asked for depth 10^6 or width 10^6).
MAX_WIDTH = 1 << 16
MAX_DEPTH = 4096
MAX_LENGTH = 1 << 20
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of `tensors`, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d too
    return h.hexdigest()


def model_file_sha256(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """The `multiseq.model/2` digest: tensors plus every metadata key and value except `sha256` itself."""
    covered = {k: v for k, v in metadata.items() if k != "sha256"}
    text = json.dumps(covered, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(f"{tensors_sha256(tensors)}\n{text}".encode()).hexdigest()


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (shared storage cloned so safetensors accepts it)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_model(
    model: Any,
    path: str | os.PathLike,
    extra_metadata: dict[str, str] | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Save a `SequenceModel` (weights, config, metadata, sha256) atomically to `path` (`.safetensors`).

    Args:
        model: the model; its `config` is stored.
        path: target file.
        extra_metadata: more string keys and values to store (covered by the digest); `read_model_metadata`
            returns them. `format`, `config` and `sha256` are reserved.
        class_names: one name per class (also accepted as `extra_metadata["class_names"]`, a JSON list).
    Returns:
        The path written.
    """
    meta: dict[str, str] = {}
    for key, value in (extra_metadata or {}).items():
        if key in RESERVED_KEYS:
            raise ConfigError(f"extra_metadata key {key!r} is reserved; reserved keys: {', '.join(RESERVED_KEYS)}")
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError(f"extra_metadata must map str to str (JSON-encode other values), got {key!r}: {type(value).__name__}")
        meta[key] = value
    if class_names is not None:
        meta["class_names"] = json.dumps(list(class_names))
    if "class_names" in meta:
        _check_class_names(json.loads(meta["class_names"]), model.config.num_classes, ConfigError, "class_names")
    render_env = _render_environment(model)
    if render_env is not None:
        meta.setdefault("render_environment", json.dumps(render_env, sort_keys=True))
    tensors = state_tensors(model)
    meta = {**meta, "format": FORMAT, "config": model.config.to_json()}
    meta["sha256"] = model_file_sha256(tensors, meta)
    atomic_write_bytes(path, st_save(tensors, metadata=meta))
    return Path(path)


def _check_class_names(names: Any, num_classes: int, error: type[Exception], where: str) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise error(f"{where} must be a list of strings, one per class; got {names!r:.200}")
    if num_classes and len(names) != num_classes:
        raise error(f"{where} lists {len(names)} names but the model has {num_classes} classes")
    if len(set(names)) != len(names):
        raise error(f"{where} has duplicate names: {names!r:.200}")
    return names


def _read_header(path: Path, data: bytes) -> dict[str, Any]:
    """The safetensors header (tensor entries and `__metadata__`) without touching the tensor data."""
    if len(data) < 8:
        raise CheckpointError(f"checkpoint {path} is truncated ({len(data)} bytes)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8 or header_len > 100_000_000:
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file (bad header length)")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt: its header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {path} is corrupt: its header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"checkpoint {path} is corrupt: __metadata__ must map strings to strings")
    return header


def _shapes(header: dict[str, Any], path: Path) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise CheckpointError(f"checkpoint {path} is corrupt: tensor {name!r} has no valid shape")
        shapes[name] = tuple(shape)
    return shapes


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read and verify a model file: returns (tensors, metadata). Raises `CheckpointError` on any problem.

    The digest covers the tensors and all metadata (config, class names, extra keys); see the module docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    meta = _read_header(path, data).get("__metadata__") or {}
    fmt = meta.get("format")
    if fmt in LEGACY_FORMATS:
        raise CheckpointError(
            f"{path} is an old multiseq model file ({fmt}) whose sha256 does not cover its config and metadata, so "
            f"it is not loaded; if you trust it, re-save it once with "
            f"multiseq.checkpoint.resave_legacy_model_file({str(path)!r})"
        )
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is not a multiseq model file (format {fmt!r}, expected {FORMAT!r})")
    tensors = _load_tensors(path, data)
    if model_file_sha256(tensors, meta) != meta.get("sha256"):
        raise CheckpointError(
            f"checkpoint {path} failed its sha256 check: the weights, the config or the metadata "
            f"({', '.join(sorted(k for k in meta if k != 'sha256'))}) were modified or damaged"
        )
    return tensors, meta


def _load_tensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return st_load(data)
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt: {e}") from None


def read_model_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The verified metadata of a model file, decoded.

    Returns:
        `{"format": str, "sha256": str, "config": dict (the ModelConfig as a dict), "class_names": list[str] or
        None, **extra}` where `extra` holds the other keys given to `save_model(extra_metadata=...)` as stored
        (strings). `load_model` attaches the same dict to the model as `model.metadata`.
    """
    _, meta = read_checkpoint(path)
    return _decode_metadata(path, meta)


def _decode_metadata(path: Any, meta: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(meta)
    config = _stored_config(path, meta)
    out["config"] = config.to_dict()
    names = None
    if "class_names" in meta:
        try:
            names = json.loads(meta["class_names"])
        except json.JSONDecodeError:
            names = meta["class_names"]
        _check_class_names(names, config.num_classes, CheckpointError, f"checkpoint {path}: class_names")
    out["class_names"] = names
    return out


def _stored_config(path: Any, meta: dict[str, str]) -> ModelConfig:
    try:
        return ModelConfig.from_json(meta["config"])
    except (KeyError, ConfigError) as e:
        raise CheckpointError(f"checkpoint {path} carries no valid model config: {e}") from None


def check_config_size(config: ModelConfig, shapes: dict[str, tuple[int, ...]], where: str = "checkpoint") -> None:
    """Refuse, before anything is built, a config that is absurd or larger than the tensors of its file.

    Args:
        config: the stored config.
        shapes: tensor name -> shape, from the safetensors header (no data read).
        where: names the file in messages.
    Raises:
        CheckpointError naming the size that is wrong and the valid range.
    """
    limits = (("width", config.width, MAX_WIDTH), ("depth", config.depth, MAX_DEPTH),
              ("adapter.max_length", config.adapter.max_length, MAX_LENGTH),
              ("stem.width", config.stem.width, MAX_WIDTH), ("head.hidden", config.head.hidden, MAX_WIDTH),
              ("num_classes", config.num_classes, 1 << 20))
    for name, value, limit in limits:
        if value > limit:
            raise CheckpointError(f"{where}: config {name} = {value} is beyond the loader's limit {limit}; refused before building the model")
    for spec in config.blocks:
        for key, value in spec.options.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_LENGTH:
                raise CheckpointError(f"{where}: block {spec.name!r} option {key} = {value} is beyond the limit {MAX_LENGTH}")
    layers = {int(n.split(".")[2]) for n in shapes if n.startswith("backbone.layers.") and n.split(".")[2].isdigit()}
    if layers != set(range(config.depth)):
        raise CheckpointError(
            f"{where}: the config says depth {config.depth} but the file holds tensors for {len(layers)} layers"
        )
    final = shapes.get("backbone.final_norm.weight")
    if final is not None and final != (config.width,):
        raise CheckpointError(f"{where}: the config says width {config.width} but the file's final norm has shape {final}")
    held = sum(_numel(s) for s in shapes.values())
    estimate = estimate_state_size(config)
    if estimate is not None and estimate > 1.05 * held + 4096:
        raise CheckpointError(
            f"{where}: the config asks for about {estimate:,} parameter values but the file holds {held:,}; "
            f"the header does not describe these weights (refused before building the model)"
        )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def estimate_state_size(config: ModelConfig) -> int | None:
    """Values in the state dict of `SequenceModel(config)`, estimated without building it at its width.

    The model is built at three small widths with each distinct layer once; the size of the non-layer part and of
    each layer is a polynomial of degree <= 2 in the width (linear maps, norms, embeddings, state sizes), fitted
    exactly through the three points and evaluated at the config's width, times each layer's count. Returns None
    when the config cannot be built at small widths (the structural checks still apply).
    """
    from multiseq.sequence_model import SequenceModel

    specs: list[Any] = []
    for s in config.layers:
        if s not in specs:
            specs.append(s)
    counts = [sum(1 for s in config.layers if s == spec) for spec in specs]
    for widths in ((16, 32, 48), (64, 128, 192)):
        points = []
        try:
            for w in widths:
                small = config.replace(width=w, depth=len(specs), blocks=tuple(specs))
                with torch.device("cpu"):
                    sd = SequenceModel(small).state_dict()
                per_layer = [0] * len(specs)
                rest = 0
                for name, t in sd.items():
                    parts = name.split(".")
                    if name.startswith("backbone.layers.") and parts[2].isdigit():
                        per_layer[int(parts[2])] += t.numel()
                    else:
                        rest += t.numel()
                points.append((rest, per_layer))
        except (ConfigError, ValueError, RuntimeError, TypeError):
            continue
        W = config.width

        def fit(ys: list[int]) -> float:
            (x0, x1, x2), (y0, y1, y2) = widths, ys  # Lagrange interpolation through three points
            return (y0 * (W - x1) * (W - x2) / ((x0 - x1) * (x0 - x2)) + y1 * (W - x0) * (W - x2) / ((x1 - x0) * (x1 - x2))
                    + y2 * (W - x0) * (W - x1) / ((x2 - x0) * (x2 - x1)))

        total = fit([p[0] for p in points])
        total += sum(c * fit([p[1][i] for p in points]) for i, c in enumerate(counts))
        return int(total)
    return None


def load_model(path: str | os.PathLike, device: Any = None, config: ModelConfig | None = None):
    """Rebuild a `SequenceModel` from a model file. If `config` is given, the file's config must equal it.

    The file is verified (digest over weights, config and metadata) and its sizes are checked against its tensors
    before the model is built. The returned model carries `model.metadata` (see `read_model_metadata`), e.g.
    `model.metadata["class_names"]`.
    """
    from multiseq.sequence_model import SequenceModel

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    header = _read_header(path, data)
    meta = header.get("__metadata__") or {}
    if meta.get("format") == FORMAT:
        check_config_size(_stored_config(path, meta), _shapes(header, path), f"checkpoint {path}")
    tensors, meta = read_checkpoint(path)
    metadata = _decode_metadata(path, meta)
    stored = ModelConfig.from_dict(metadata["config"])
    if config is not None and config.to_dict() != stored.to_dict():
        raise CheckpointError(f"checkpoint {path} was saved with a different model config than the one given")
    model = SequenceModel(stored, device=device)
    load_tensors(model, tensors, str(path))
    model.metadata = metadata
    _warn_if_rendered_differently(model, metadata, path)
    return model


def _render_environment(model: Any) -> dict[str, Any] | None:
    """What decides a rendering model's pixels here (font file hashes, Pango/Cairo/HarfBuzz versions, renderer
    config), recorded in its file; None for models that do not render text."""
    render_config = getattr(getattr(model, "adapter", None), "render_config", None)
    if render_config is None:
        return None
    from renderers import RenderError, environment

    try:
        return environment(render_config)
    except RenderError:  # no fonts or bindings here: the model cannot render either, and says so when used
        return None


def _warn_if_rendered_differently(model: Any, metadata: dict[str, Any], path: Path) -> None:
    recorded = metadata.get("render_environment")
    render_config = getattr(getattr(model, "adapter", None), "render_config", None)
    if recorded is None or render_config is None:
        return
    import warnings

    from renderers import RenderError, check_environment

    try:
        diffs = check_environment(json.loads(recorded) if isinstance(recorded, str) else recorded, render_config)
    except (RenderError, json.JSONDecodeError) as e:
        diffs = [f"the recorded rendering environment cannot be read ({e})"]
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        warnings.warn(
            f"{path} was trained on text rendered by a different setup, so its input pixels may differ here: {shown}",
            stacklevel=3,
        )


def resave_legacy_model_file(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Convert a trusted `multiseq.model/1` file to the current format (in place unless `out` is given).

    Only the tensors were covered by the old digest; it is checked, the sizes are checked, and the config and
    metadata are taken as they are, so use this only on files you trust.
    """
    from multiseq.sequence_model import SequenceModel

    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    if not data:
        raise CheckpointError(f"checkpoint not found: {path}")
    header = _read_header(path, data)
    meta = dict(header.get("__metadata__") or {})
    if meta.get("format") not in LEGACY_FORMATS:
        raise CheckpointError(f"{path} is not an old-format model file (format {meta.get('format')!r})")
    tensors = _load_tensors(path, data)
    if tensors_sha256(tensors) != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {path} failed its (old, tensors-only) sha256 check: the weights were modified or damaged")
    config = _stored_config(path, meta)
    check_config_size(config, _shapes(header, path), f"checkpoint {path}")
    model = SequenceModel(config)
    load_tensors(model, tensors, str(path))
    extra = {k: v for k, v in meta.items() if k not in RESERVED_KEYS}
    return save_model(model, out or path, extra_metadata=extra)


def load_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Load tensors into a model strictly; names and shapes must match exactly."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{where} does not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{where}: tensor {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    model.load_state_dict(tensors, strict=True)


# ---------------------------------------------------------------------------------------------------------------
# Training checkpoints: `checkpoints/step_XXXXXXXX/{model.safetensors, state.safetensors}`.
#
# `model.safetensors` is an ordinary model file (load_model reads it). `state.safetensors` holds the optimiser's
# tensors, the RNG states and, in its JSON metadata, the optimiser's hyper-parameters, the scheduler step, the data
# position and whatever else the trainer needs. Both files are written into a hidden temporary folder which is
# renamed into place only when complete, so a folder named `step_*` is always whole; a run killed at any moment
# leaves at most a stale `.tmp-*` folder, which is ignored and cleaned up.

STATE_FORMAT = "multiseq.trainstate/1"
_STEP_DIR = "step_{:08d}"


def _state_digest(tensors: dict[str, torch.Tensor], state_json: str) -> str:
    return hashlib.sha256((tensors_sha256(tensors) + "\n" + state_json).encode()).hexdigest()


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into safetensors tensors and a JSON-able description (no pickle)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], desc: dict[str, Any]) -> dict[str, Any]:
    """Rebuild an optimiser state dict from `optimizer_to_tensors`' output."""
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = t
    for idx, values in desc.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()} for g in desc["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_training_checkpoint(
    directory: str | os.PathLike,
    step: int,
    model: Any,
    state_tensors_: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int = 3,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write `directory/step_<step>/` atomically (model file + state file) and keep only the last `keep` steps.

    Args:
        directory: the run's `checkpoints/` folder.
        step: optimiser steps done.
        model: the `SequenceModel` (unwrapped).
        state_tensors_: optimiser and RNG tensors (names free, e.g. `optim/3/exp_avg`, `rng/torch`).
        state: JSON-able trainer state (step, data position, scheduler, optimiser groups, ...).
        keep: how many step folders to keep (>= 1).
    Returns:
        The final folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / _STEP_DIR.format(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=directory))
    try:
        model_path = save_model(model, tmp / "model.safetensors", extra_metadata=extra_metadata)
        _, model_meta = read_checkpoint(model_path)
        state = {**state, "step": step, "model_sha256": model_meta["sha256"]}
        state_json = json.dumps(state, sort_keys=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_tensors_.items()}
        meta = {"format": STATE_FORMAT, "state": state_json, "sha256": _state_digest(tensors, state_json)}
        atomic_write_bytes(tmp / "state.safetensors", st_save(tensors, metadata=meta))
        _crash_point("checkpoint")
        if final.exists():  # the same step written again (e.g. after a resume): replace it whole
            _discard(final)
        os.replace(tmp, final)
        fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_training_checkpoints(directory)[:-keep] if keep >= 1 else []:
        _discard(old)
    return final


def _discard(path: Path) -> None:
    # Rename first (atomic), then delete: a kill mid-delete leaves only a hidden folder, never a half `step_*`.
    trash = path.parent / f".trash-{path.name}-{os.getpid()}"
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def list_training_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete `step_*` folders under `directory`, oldest first. Reads only: a run still training keeps its
    in-progress `.tmp-*` folders (the writer cleans up, see `remove_stale_checkpoints`)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step_*") if p.is_dir() and p.name[5:].isdigit())


def remove_stale_checkpoints(directory: str | os.PathLike) -> None:
    """Delete `.tmp-*` / `.trash-*` folders left by a killed writer. Only the run's writer (holding its lock)
    calls this, at its own start or resume."""
    directory = Path(directory)
    if directory.is_dir():
        for stale in directory.glob(".t*-step_*"):
            shutil.rmtree(stale, ignore_errors=True)


def resolve_model_file(path: str | os.PathLike) -> Path:
    """A run directory (its model.safetensors, else its newest checkpoint) or a `.safetensors` file."""
    p = Path(path)
    if p.is_dir():
        if (p / "model.safetensors").is_file():
            return p / "model.safetensors"
        ckpts = list_training_checkpoints(p / "checkpoints")
        if ckpts:
            return ckpts[-1] / "model.safetensors"
        raise ConfigError(f"{p} holds no model.safetensors and no checkpoints")
    return p


def read_training_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a training checkpoint folder.

    Returns:
        (model tensors, model metadata, state tensors, state dict). Raises `CheckpointError` saying which file is
        missing, truncated, corrupt or tampered with, or that the two files do not belong together.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"training checkpoint not found: {path} (expected a step_* folder)")
    model_tensors, model_meta = read_checkpoint(path / "model.safetensors")
    spath = path / "state.safetensors"
    if not spath.is_file():
        raise CheckpointError(f"training checkpoint {path} has no state.safetensors (optimiser/RNG state missing)")
    data = spath.read_bytes()
    if len(data) < 8 or int.from_bytes(data[:8], "little") > len(data) - 8:
        raise CheckpointError(f"training state {spath} is truncated ({len(data)} bytes)")
    try:
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        tensors = st_load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"training state {spath} is corrupt: {e}") from None
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{spath} is not a multiseq training state (format {meta.get('format')!r}, expected {STATE_FORMAT!r})")
    state_json = meta.get("state", "")
    if _state_digest(tensors, state_json) != meta.get("sha256"):
        raise CheckpointError(f"training state {spath} failed its sha256 check: it was modified or damaged")
    state = json.loads(state_json)
    if state.get("model_sha256") != model_meta.get("sha256"):
        raise CheckpointError(
            f"training checkpoint {path}: model.safetensors and state.safetensors come from different checkpoints"
        )
    return model_tensors, model_meta, tensors, state


def _crash_point(name: str) -> None:
    # Test hook: MULTISEQ_CRASH_AT="checkpoint:3" SIGKILLs this process in the middle of the 3rd checkpoint write
    # (both files written, folder not yet renamed), the worst moment for a crash. Unset in normal use.
    spec = os.environ.get("MULTISEQ_CRASH_AT", "")
    if not spec.startswith(name + ":"):
        return
    _CRASH_COUNTS[name] = _CRASH_COUNTS.get(name, 0) + 1
    if _CRASH_COUNTS[name] == int(spec.split(":")[1]):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_CRASH_COUNTS: dict[str, int] = {}

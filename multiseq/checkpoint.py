"""Model files: safetensors weights with the JSON config and a sha256 of the tensors in the header metadata.

Writes are atomic (temp file in the same folder, fsync, rename), loads never unpickle, and a truncated, corrupt,
tampered or mismatched file is refused with a message that says which and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from multiseq._io import atomic_write_bytes, fsync_dir
from multiseq.config import ModelConfig
from multiseq.errors import CheckpointError, ConfigError

FORMAT = "multiseq.model/1"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of `tensors`, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d too
    return h.hexdigest()


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (shared storage cloned so safetensors accepts it)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_model(model: Any, path: str | os.PathLike, extra_metadata: dict[str, str] | None = None) -> Path:
    """Save a `SequenceModel` (weights, config, sha256) atomically to `path` (`.safetensors`)."""
    tensors = state_tensors(model)
    meta = {
        "format": FORMAT,
        "config": model.config.to_json(),
        "sha256": tensors_sha256(tensors),
        **(extra_metadata or {}),
    }
    atomic_write_bytes(path, st_save(tensors, metadata=meta))
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read and verify a model file: returns (tensors, metadata). Raises `CheckpointError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    if len(data) < 8:
        raise CheckpointError(f"checkpoint {path} is truncated ({len(data)} bytes)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8 or header_len > 100_000_000:
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file (bad header length)")
    try:
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        tensors = st_load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt: {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a multiseq model file (format {meta.get('format')!r}, expected {FORMAT!r})")
    if tensors_sha256(tensors) != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {path} failed its sha256 check: the weights were modified or damaged")
    return tensors, meta


def load_model(path: str | os.PathLike, device: Any = None, config: ModelConfig | None = None):
    """Rebuild a `SequenceModel` from a model file. If `config` is given, the file's config must equal it."""
    from multiseq.sequence_model import SequenceModel

    tensors, meta = read_checkpoint(path)
    try:
        stored = ModelConfig.from_json(meta["config"])
    except (KeyError, ConfigError) as e:
        raise CheckpointError(f"checkpoint {path} carries no valid model config: {e}") from None
    if config is not None and config.to_dict() != stored.to_dict():
        raise CheckpointError(f"checkpoint {path} was saved with a different model config than the one given")
    model = SequenceModel(stored, device=device)
    load_tensors(model, tensors, str(path))
    return model


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

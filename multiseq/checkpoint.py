"""Model files: safetensors weights with the JSON config and a sha256 of the tensors in the header metadata.

Writes are atomic (temp file in the same folder, fsync, rename), loads never unpickle, and a truncated, corrupt,
tampered or mismatched file is refused with a message that says which and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from multiseq.config import ModelConfig
from multiseq.errors import CheckpointError, ConfigError

FORMAT = "multiseq.model/1"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of `tensors`, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    from multiseq.modeling import SequenceModel

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

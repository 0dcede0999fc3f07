"""Starting a run from a pretrained body: `fit(..., init=run_dir_or_model_file)`."""

from __future__ import annotations

import dataclasses

import os
from typing import Any

from torch import nn

from multiseq.checkpoint import read_checkpoint, resolve_model_file
from multiseq.config import ModelConfig
from multiseq.errors import CheckpointError, ConfigError
from multiseq.train.data import model_for_data
from multiseq.train.objectives import body_state

# Fields that belong to the task head (replaced at fine-tuning) or are informational; all others must match.
HEAD_FIELDS = ("name", "num_classes", "head")


def init_from(init: str | os.PathLike, model: Any, data: Any, device: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    """A model for `data` whose body is copied exactly from `init` and whose head is fresh.

    Args:
        init: a run directory (its `model.safetensors`, else its newest checkpoint) or a `.safetensors` model file.
        model: None (take the file's config, with the data's classes) or a preset name / `ModelConfig` /
            `SequenceModel` whose non-head fields must equal the file's.
        data: the training set (number of classes, adapter, pairs).
    Returns:
        (model, {"path", "sha256"}) for the run's config.json.
    """
    file = resolve_model_file(init)
    tensors, meta = read_checkpoint(file)
    try:
        stored = ModelConfig.from_json(meta["config"])
    except (KeyError, ConfigError) as e:
        raise CheckpointError(f"{file} carries no valid model config: {e}") from None
    if model is None:
        # The file's config is the whole model, adapter included: the data's own adapter (e.g. bytes for an IMDb
        # dataset read by a rendered-text model) must not replace or merge into it.
        net = model_for_data(stored, data, device=device, adapter=dataclasses.asdict(stored.adapter))
    else:
        net = model_for_data(model, data, device=device)
    ours, theirs = net.config.to_dict(), stored.to_dict()
    differ = sorted(k for k in set(ours) | set(theirs) if k not in HEAD_FIELDS and ours.get(k) != theirs.get(k))
    if differ:
        detail = "; ".join(f"{k}: {theirs.get(k)!r} (init) vs {ours.get(k)!r} (given)" for k in differ[:6])
        raise ConfigError(
            f"the model config differs from the one in {file} in {', '.join(differ)} ({detail}); only the head "
            f"({', '.join(HEAD_FIELDS)}) may change at fine-tuning: omit the model to take the file's config"
        )
    body = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    want = set(body_state(net))
    if set(body) != want:
        raise CheckpointError(f"{file}: its body weights do not match the model (missing "
                              f"{sorted(want - set(body))[:5]}, unexpected {sorted(set(body) - want)[:5]})")
    p = next(net.parameters())
    net.load_state_dict({k: v.to(p.device) for k, v in body.items()}, strict=False)
    net.reset_classifier(net.config.num_classes)  # a fresh head for this task
    return net, {"path": str(init), "sha256": meta.get("sha256")}

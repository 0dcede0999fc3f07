"""The run directory: config.json (checked on resume), metrics.jsonl, training checkpoints and the final model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multiseq._io import atomic_write_bytes
from multiseq.checkpoint import (
    list_training_checkpoints,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_training_checkpoint,
    save_model,
    save_training_checkpoint,
)
from multiseq.errors import CheckpointError, ConfigError
from multiseq.train.distributed import _barrier, _gather_rng, _host_rng, _set_rng

# Fields that may change between a run and its resumption without changing the numbers it produces.
_FREE_FIELDS = {"log_every", "eval_every", "checkpoint_every", "keep", "eval_batch_size", "num_workers"}

def _read_metrics(path: Path) -> list[dict[str, Any]]:
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a crash ends the valid log
    return records


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += _diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}: {a.get(k)!r} (run) vs {b.get(k)!r} (now)")
    return out


def _run_identity(run_config: dict[str, Any]) -> dict[str, Any]:
    ident = json.loads(json.dumps(run_config))
    for k in _FREE_FIELDS:
        ident.get("train", {}).pop(k, None)
    ident.pop("world_size", None)
    return ident


class _Log:
    """Appends JSON lines to metrics.jsonl (rank 0 only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()


def _checkpoint(run_dir, done, net, optimizer, cfg, world, dev, rank, n, labels) -> None:
    rng = _gather_rng(world, dev)  # every rank takes part in the gather
    if rank == 0:
        opt_tensors, opt_desc = optimizer_to_tensors(optimizer)
        host_tensors, host_state = _host_rng()
        state = {"position": done * cfg.batch_size, "train_size": n, "optimizer": opt_desc, "schedule_step": done, **host_state}
        save_training_checkpoint(
            run_dir / "checkpoints", done, net, {**opt_tensors, **rng, **host_tensors}, state, keep=cfg.keep,
            extra_metadata={"class_names": json.dumps(labels)},
        )
    _barrier(world)


def _prepare_run_dir(run_dir, run_config, resume, rank, world, net, optimizer, dev, n) -> int:
    """Create or reopen the run directory; on resume load the newest checkpoint and return its step."""
    cfg_path = run_dir / "config.json"
    existing = cfg_path.is_file()
    if existing and not resume:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if existing:
        try:
            stored = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg_path} is corrupt: {e}") from None
        diffs = _diff(_run_identity(stored), _run_identity(run_config))
        if diffs:
            raise CheckpointError(
                f"cannot resume {run_dir}: the settings differ from the run's, so the result would not be the same run: "
                + "; ".join(diffs[:8])
            )
    _barrier(world)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not existing:
            atomic_write_bytes(cfg_path, (json.dumps(run_config, indent=2, sort_keys=True) + "\n").encode())
    _barrier(world)
    ckpts = list_training_checkpoints(run_dir / "checkpoints") if resume else []
    step = 0
    if ckpts:
        step = _load_checkpoint(ckpts[-1], net, optimizer, rank, dev, n)
    if rank == 0 and resume:
        # Drop log lines written after the checkpoint (they will be written again) and any line cut by a crash.
        keep = [r for r in _read_metrics(run_dir / "metrics.jsonl") if r.get("step", 0) <= step]
        atomic_write_bytes(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in keep).encode())
        print(f"resuming {run_dir} from step {step}" if ckpts else f"no checkpoint in {run_dir}; starting from step 0", flush=True)
    _barrier(world)
    return step


def _load_checkpoint(path: Path, net, optimizer, rank, dev, n) -> int:
    from multiseq.config import ModelConfig as _MC

    model_tensors, model_meta, tensors, state = read_training_checkpoint(path)
    stored = _MC.from_json(model_meta["config"])
    diffs = _diff(stored.to_dict(), net.config.to_dict())
    if diffs:
        raise CheckpointError(f"checkpoint {path} was saved with a different model config: " + "; ".join(diffs[:8]))
    if state.get("train_size") != n:
        raise CheckpointError(f"checkpoint {path} was trained on {state.get('train_size')} examples, the data now has {n}")
    load_tensors(net, {k: v.to(dev) for k, v in model_tensors.items()}, str(path))
    names_now = [g["names"] for g in optimizer.param_groups]
    names_then = [g.get("names") for g in state["optimizer"]["param_groups"]]
    if names_now != names_then:
        raise CheckpointError(f"checkpoint {path}: the optimiser's parameter groups do not match this model")
    osd = optimizer_from_tensors(tensors, state["optimizer"])
    optimizer.load_state_dict(osd)
    _set_rng(tensors, state, rank, dev)
    return int(state["step"])


def _finish_run(run_dir: Path, net, labels, last) -> None:
    save_model(net, run_dir / "model.safetensors", extra_metadata={"class_names": json.dumps(labels)})
    records = _read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r.get("kind") == "eval"]
    if evals and "eval" not in last:
        last["eval"] = evals[-1]
    try:
        from multiseq.plots import plot_confusion, plot_curves
    except ImportError as e:  # matplotlib is optional ([plot] extra)
        print(f"plots skipped: {e}")
        return
    plot_curves(records, run_dir / "curves.png")
    if evals:
        plot_confusion(evals[-1]["confusion"], labels, run_dir / "confusion.png")

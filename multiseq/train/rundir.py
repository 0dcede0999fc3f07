"""The run directory: config.json (checked on resume), metrics.jsonl, training checkpoints and the final model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multiseq._io import atomic_write_bytes
from multiseq.checkpoint import (
    list_training_checkpoints,
    remove_stale_checkpoints,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_training_checkpoint,
    save_model,
    save_training_checkpoint,
)
from multiseq.errors import CheckpointError, ConfigError
from multiseq.train.distributed import _all_sum, _barrier, _gather_rng, _host_rng, _set_rng
from multiseq.train.lock import RunLock
from multiseq.train.records import RunContext

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
    for k in ("world_size", "budget", "init"):  # recorded, not compared: a budget run's measured total, the init file
        ident.pop(k, None)
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


def save_checkpoint(ctx: RunContext, done: int, objective: Any, optimizer: Any, extra_state: dict[str, Any]) -> None:
    """Training checkpoint of step `done`: the `SequenceModel` as an ordinary model file; optimiser, RNG states,
    the objective's own tensors (pretraining: mask vector, reconstruction head) and `extra_state` beside it."""
    rng = _gather_rng(ctx.world, ctx.device)  # every rank takes part in the gather
    if ctx.writes:
        opt_tensors, opt_desc = optimizer_to_tensors(optimizer)
        host_tensors, host_state = _host_rng()
        state = {"position": done * ctx.cfg.batch_size, "train_size": ctx.n, "optimizer": opt_desc,
                 "schedule_step": done, **host_state, **extra_state}
        save_training_checkpoint(
            ctx.run_dir / "checkpoints", done, objective.net,
            {**opt_tensors, **rng, **host_tensors, **objective.extra_tensors()}, state, keep=ctx.cfg.keep,
            extra_metadata={"class_names": json.dumps(ctx.labels)},
        )
    _barrier(ctx.world)


def open_run_dir(ctx: RunContext, run_config: dict[str, Any], resume: bool, lock: RunLock | None,
                 objective: Any, optimizer: Any) -> tuple[int, dict[str, Any], float]:
    """Lock, create or reopen the run directory; on resume load the newest checkpoint.

    Returns:
        (step to start from, the run's stored config.json when a checkpoint continues it, else the new one,
        training seconds already spent by the checkpointed run).
    A directory holding config.json but no checkpoint and no final model is a run that never got going: it is
    started afresh (with or without `resume`).
    """
    run_dir = ctx.run_dir
    error = None
    if lock is not None:
        try:
            lock.acquire()
        except ConfigError as e:
            error = e
    if _all_sum([float(error is not None)], ctx.world, ctx.device)[0]:  # every rank stops, not only the one that knows
        raise error or ConfigError(f"{run_dir} is in use by another training run (see its .lock)")
    cfg_path = run_dir / "config.json"
    ckpts = list_training_checkpoints(run_dir / "checkpoints")
    started = cfg_path.is_file() and (bool(ckpts) or (run_dir / "model.safetensors").is_file())
    if started and not resume:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    stored = run_config
    if started:
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
    _barrier(ctx.world)
    if ctx.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_checkpoints(run_dir / "checkpoints")  # the writer's own clean-up, under its lock
        if not started:
            write_config(run_dir, run_config)
    _barrier(ctx.world)
    step, state = 0, {}
    if started and ckpts:
        step, state = _load_checkpoint(ckpts[-1], ctx, objective, optimizer)
    if ctx.rank == 0:
        # Drop log lines written after the checkpoint (they will be written again) and any line cut by a crash.
        keep = [r for r in _read_metrics(run_dir / "metrics.jsonl") if r.get("step", 0) <= step] if started else []
        atomic_write_bytes(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in keep).encode())
        if resume:
            print(f"resuming {run_dir} from step {step}" if step else f"no checkpoint in {run_dir}; starting from step 0",
                  flush=True)
    _barrier(ctx.world)
    return step, stored, float(state.get("train_seconds", 0.0))


def write_config(run_dir: Path, run_config: dict[str, Any]) -> None:
    atomic_write_bytes(run_dir / "config.json", (json.dumps(run_config, indent=2, sort_keys=True) + "\n").encode())


def _load_checkpoint(path: Path, ctx: RunContext, objective: Any, optimizer: Any) -> tuple[int, dict[str, Any]]:
    from multiseq.config import ModelConfig as _MC

    net = objective.net
    model_tensors, model_meta, tensors, state = read_training_checkpoint(path)
    stored = _MC.from_json(model_meta["config"])
    diffs = _diff(stored.to_dict(), net.config.to_dict())
    if diffs:
        raise CheckpointError(f"checkpoint {path} was saved with a different model config: " + "; ".join(diffs[:8]))
    if state.get("train_size") != ctx.n:
        raise CheckpointError(f"checkpoint {path} was trained on {state.get('train_size')} examples, the data now has {ctx.n}")
    load_tensors(net, {k: v.to(ctx.device) for k, v in model_tensors.items()}, str(path))
    objective.load_extra({k: v.to(ctx.device) for k, v in tensors.items()}, str(path))
    names_now = [g["names"] for g in optimizer.param_groups]
    names_then = [g.get("names") for g in state["optimizer"]["param_groups"]]
    if names_now != names_then:
        raise CheckpointError(f"checkpoint {path}: the optimiser's parameter groups do not match this model")
    osd = optimizer_from_tensors(tensors, state["optimizer"])
    optimizer.load_state_dict(osd)
    _set_rng(tensors, state, ctx.rank, ctx.device)
    return int(state["step"]), state


def finish_run(ctx: RunContext, net: Any, last: dict[str, Any]) -> None:
    """The final model file (the `SequenceModel`, head included) and the plots."""
    run_dir = ctx.run_dir
    save_model(net, run_dir / "model.safetensors", extra_metadata={"class_names": json.dumps(ctx.labels)})
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
        plot_confusion(evals[-1]["confusion"], ctx.labels, run_dir / "confusion.png")

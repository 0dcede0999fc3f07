"""Run directories a user can trust (issue #18 items 2, 6, 7): readers never write, one writer per run directory,
zero never silently becomes a default, and a failed start leaves --out usable."""

from __future__ import annotations

import json

import pytest

from multiseq.checkpoint import list_training_checkpoints, resolve_model_file
from multiseq.errors import ConfigError, UnknownNameError
from multiseq.train import TrainConfig, fit
from multiseq.train.lock import RunLock
from tests.train._tiny import count_data
from tests.train._tiny import tiny_model as _model

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # one torch thread: tiny models, shared machine


def _data(n=32):
    return count_data("train", n)


@pytest.mark.parametrize("field, value, valid", [
    ("batch_size", 0, "int >= 1"), ("lr", 0.0, "> 0"), ("lr", -1e-3, "> 0"), ("warmup_steps", -5, "int >= 0"),
    ("label_smoothing", 1.0, r"\[0, 1\)"), ("label_smoothing", -0.1, r"\[0, 1\)"), ("num_workers", -1, ">= 0"),
    ("accumulate", 0, ">= 1"), ("budget_minutes", 0, "> 0"), ("budget_minutes", -1.0, "> 0"), ("keep", 0, ">= 1"),
    ("log_every", -1, ">= 0"), ("eval_batch_size", 0, ">= 1"), ("eps", 0.0, "> 0"), ("grad_clip", -1.0, ">= 0"),
    ("betas", (0.9, 1.0), r"\[0, 1\)"), ("final_lr_ratio", 2.0, r"\[0, 1\]"), ("steps", 0, ">= 1"),
    ("epochs", 0.0, "> 0"), ("batch_size", 2.5, "int"), ("lr", float("nan"), "> 0"),
])
def test_train_config_refuses_bad_values_and_says_what_is_valid(field, value, valid):
    base = {"steps": 10} if field not in ("steps", "epochs") else {}
    with pytest.raises(ConfigError, match=rf"{field} must be .*{valid}"):
        TrainConfig(**{**base, field: value})


def test_budget_alone_or_capped_is_a_valid_length():
    assert TrainConfig(budget_minutes=1).steps is None
    assert TrainConfig(budget_minutes=1, epochs=2).epochs == 2
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(steps=1, epochs=1)


def test_nothing_is_written_when_the_run_cannot_start(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="label_smoothing"):
        fit(_model(), _data(), steps=2, batch_size=8, label_smoothing=1.5, out=out, progress=False)
    with pytest.raises(ConfigError, match="num_workers"):
        fit(_model(), _data(), steps=2, batch_size=8, num_workers=-1, out=out, progress=False)
    with pytest.raises(UnknownNameError, match="unknown model"):  # the model is built before anything is written
        fit("local_bytes_tiny_nonexistent", _data(), steps=2, batch_size=8, out=out, progress=False)
    assert not out.exists()
    # bf16 on CPU: runs where torch supports it, otherwise a clear error before anything is written.
    try:
        fit(_model(), _data(), steps=1, batch_size=8, precision="bf16", out=out, progress=False, device="cpu")
    except ConfigError as e:
        assert "bf16" in str(e) and not out.exists()
    else:
        assert (out / "model.safetensors").is_file()


def test_a_run_that_never_got_going_can_be_restarted(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    # What an older version left behind: config.json of a bad command, a log line, no checkpoint.
    (out / "config.json").write_text(json.dumps({"train": {"label_smoothing": 1.5}}))
    (out / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 9}\n')
    fit(_model(), _data(), steps=2, batch_size=8, out=out, progress=False)  # the corrected command
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 2
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == [2]
    out2 = tmp_path / "run2"
    out2.mkdir()
    (out2 / "config.json").write_text("{}")
    fit(_model(), _data(), steps=2, batch_size=8, out=out2, resume=True, progress=False)  # or --resume
    assert (out2 / "model.safetensors").is_file()


def test_one_writer_per_run_directory(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):  # another process's run, as far as flock is concerned (a separate open file)
        with pytest.raises(ConfigError, match=r"in use by another training run \(pid \d+ on host "):
            fit(_model(), _data(), steps=2, batch_size=8, out=out, progress=False)
        assert not (out / "config.json").exists()
    fit(_model(), _data(), steps=2, batch_size=8, out=out, progress=False)  # released: the next run proceeds
    fit(_model(), _data(), steps=2, batch_size=8, out=out, resume=True, progress=False)  # stale .lock file is fine


def test_readers_never_delete_a_writers_temporary_checkpoint(tmp_path):
    out = tmp_path / "run"
    fit(_model(), _data(), steps=4, batch_size=8, out=out, progress=False, checkpoint_every=2)
    (out / "model.safetensors").unlink()  # as if still training: readers fall back to the newest checkpoint
    inflight = out / "checkpoints" / ".tmp-step_00000006-abc"
    inflight.mkdir()
    (inflight / "model.safetensors").write_bytes(b"partial")
    assert resolve_model_file(out).parent.name == "step_00000004"
    assert [p.name for p in list_training_checkpoints(out / "checkpoints")] == ["step_00000002", "step_00000004"]
    from multiseq.cli import main

    assert main(["eval", str(out), "--task", "multiseq.tasks.toy:count_task", "--task-option", "length=24",
                 "--task-option", "n=16", "--split", "val", "--quiet"]) == 0
    assert main(["predict", str(out), "aaab"]) == 0
    assert inflight.is_dir()  # still there for its writer
    # The writer, at its own resume, cleans up what a killed predecessor left.
    fit(_model(), _data(), steps=4, batch_size=8, out=out, resume=True, progress=False, checkpoint_every=2)
    assert not inflight.exists()

"""`multiseq pretrain`, `multiseq train --init / --budget-minutes`, and the train commands' refusals (tiny sizes)."""

from __future__ import annotations

import json

import pytest
import torch

from multiseq.checkpoint import load_model
from multiseq.cli import main
from multiseq.train import body_state
from multiseq.train.lock import RunLock

TASK = ["--task", "multiseq.tasks.toy:count_task", "--task-option", "length=24", "--task-option", "n=32",
        "--threads", "1", "--quiet"]
MODEL = ["--model", "local_bytes_tiny", "--model-option", "width=16", "--model-option", "depth=1"]


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_pretrain_then_fine_tune_from_it(tmp_path, capsys):
    pt, ft = tmp_path / "pt", tmp_path / "ft"
    assert main(["pretrain", *TASK, *MODEL, "--steps", "4", "--batch-size", "8", "--mask-ratio", "0.2",
                 "--span", "2", "--out", str(pt)]) == 0
    assert "pretraining loss" in capsys.readouterr().out
    cfg = json.loads((pt / "config.json").read_text())
    assert cfg["stage"] == "pretrain" and cfg["pretrain"]["resolved"]["span"] == 2
    assert cfg["task"]["split"] == "train"
    assert main(["train", *TASK, "--init", str(pt), "--steps", "2", "--batch-size", "8", "--out", str(ft)]) == 0
    assert "val accuracy" in capsys.readouterr().out
    a, b = load_model(pt / "model.safetensors"), load_model(ft / "model.safetensors")
    assert a.config.replace(name="x") == b.config.replace(name="x")  # the init file's config (head unchanged here)
    assert json.loads((ft / "config.json").read_text())["init"]["path"] == str(pt)
    assert body_state(a).keys() == body_state(b).keys()
    # A given --model must match the init file's body; the error names the field.
    assert main(["train", *TASK, *MODEL[:2], "--init", str(pt), "--steps", "1", "--out", str(tmp_path / "x")]) == 2
    assert "width" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_budget_minutes(tmp_path):
    out = tmp_path / "b"
    assert main(["train", *TASK, *MODEL, "--budget-minutes", "0.02", "--batch-size", "8", "--out", str(out)]) == 0
    total = json.loads((out / "config.json").read_text())["budget"]["total_steps"]
    end = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert end["kind"] == "budget_end" and end["total_steps"] == total and 1 <= end["step"] <= total
    assert (out / "model.safetensors").is_file()
    # Resume of a finished budget run keeps its recorded total (nothing left to do).
    assert main(["train", *TASK, *MODEL, "--budget-minutes", "0.02", "--batch-size", "8", "--out", str(out),
                 "--resume"]) == 0
    assert json.loads((out / "config.json").read_text())["budget"]["total_steps"] == total


@pytest.mark.parametrize("option, value, says", [
    ("--batch-size", "0", "batch_size must be an int >= 1"), ("--lr", "0", "lr must be a number > 0"),
    ("--warmup-steps", "-5", "warmup_steps must be an int >= 0"),
    ("--label-smoothing", "1.5", r"label_smoothing must be a number in [0, 1)"),
    ("--num-workers", "-1", "num_workers must be an int >= 0"), ("--budget-minutes", "0", "budget_minutes must be"),
])
def test_zero_and_negative_values_are_refused_not_defaulted(tmp_path, capsys, option, value, says):
    out = tmp_path / "r"
    assert main(["train", *TASK, *MODEL, "--steps", "1", option, value, "--out", str(out)]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()  # nothing written: the corrected command can use --out


def test_pretrain_options_are_checked(tmp_path, capsys):
    assert main(["pretrain", *TASK, *MODEL, "--steps", "1", "--mask-ratio", "0", "--out", str(tmp_path / "p")]) == 2
    assert "mask_ratio" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["train", *TASK, "--steps", "1", "--out", str(tmp_path / "q")]) == 2
    assert "--model" in capsys.readouterr().err


def test_second_writer_on_the_same_out_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out):
        assert main(["pretrain", *TASK, *MODEL, "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "in use by another training run" in err and "pid" in err and "host" in err

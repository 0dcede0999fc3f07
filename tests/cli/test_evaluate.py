"""`multiseq eval` / `multiseq predict` (multiseq/cli/evaluate.py): the run's recorded task, `--model` and the
positional alias."""

from __future__ import annotations

import json

import pytest
import torch

import multiseq
from multiseq.cli import main
from multiseq.train import fit

TASK = "multiseq.tasks.toy:count_task"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("evalrun") / "run"
    main(["train", "--task", TASK, "--task-option", "length=24", "--task-option", "n=32", "--model", "local_bytes_tiny",
          "--model-option", "width=16", "--model-option", "depth=1", "--model-option", 'adapter={"max_length": 24}',
          "--steps", "2", "--batch-size", "8", "--val-split", "none", "--out", str(out), "--quiet"])
    return out


def test_eval_uses_the_task_recorded_in_the_run(run_dir, capsys):
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "val", "--json", "--quiet"]) == 0
    recorded = json.loads(capsys.readouterr().out)
    assert main(["eval", "--model", str(run_dir), "--task", TASK, "--task-option", "length=24", "--task-option", "n=32",
                 "--split", "val", "--json", "--quiet"]) == 0
    explicit = json.loads(capsys.readouterr().out)
    assert recorded["n"] == explicit["n"] and recorded["confusion"] == explicit["confusion"]


def test_predict_takes_model_as_option_or_positional(run_dir, capsys):
    texts = ["aaaaaaaaaaaabbbc", "bbbbbbbbbbbbbaac"]
    capsys.readouterr()
    assert main(["predict", str(run_dir), *texts, "--json"]) == 0
    a = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert main(["predict", "--model", str(run_dir), *texts, "--json"]) == 0
    b = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert a == b and len(a) == 2 and {r["label"] for r in a} <= {"b>=a", "a>b"}


def test_run_files_get_the_same_mode(run_dir):
    # Atomic writes go through mkstemp (0600); every run file gets the mode open() gives (0644 under umask 022).
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    files = [p for p in run_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert {p.name for p in files} >= {"config.json", "model.safetensors"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o666 & ~mask)}, [(p.name, oct(p.stat().st_mode)) for p in files]

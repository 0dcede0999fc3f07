"""`torchrun --nproc_per_node=2` (gloo, CPU) trains to the same parameters as one process on the same global batch
(here one process accumulating two micro-batches, which is the same gradient computed in another order)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

ARGS = [
    "train", "--task", "multiseq.tasks.toy:count_task", "--task-option", "length=24", "--task-option", "n=48",
    "--model", "local_bytes_tiny", "--model-option", "width=16", "--model-option", "depth=1",
    "--steps", "6", "--batch-size", "8", "--lr", "1e-2", "--checkpoint-every", "3", "--log-every", "3",
    "--val-split", "none", "--threads", "1", "--quiet",
    # A larger Adam eps keeps the update a smooth function of the gradient (attention's key bias has an exactly
    # zero true gradient whose rounding noise plain Adam would blow up to full steps).
    "--adam-eps", "1e-4",
]


def test_two_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run([sys.executable, "-m", "multiseq.cli", *ARGS, "--accumulate", "2", "--out", str(one)],
                        env=env, capture_output=True, text=True, timeout=300)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "multiseq.cli", *ARGS, "--out", str(two)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert r2.returncode == 0, r2.stdout[-2000:] + r2.stderr[-3000:]
    a, b = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert a.keys() == b.keys()
    moved = 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-6, rtol=1e-5, msg=k)
        moved += 1
    assert moved > 0
    # Rank 0 alone logs and checkpoints: one line per logged step, one run config, world size recorded.
    recs = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [3, 6]
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["step_00000003", "step_00000006"]
    # The logged losses are the global-batch means: equal to the single process's.
    ref = [json.loads(line) for line in (one / "metrics.jsonl").read_text().splitlines()]
    for x, y in zip(recs, ref):
        assert abs(x["loss"] - y["loss"]) < 1e-5


def test_two_processes_pretrain(tmp_path):
    # Pretraining under torchrun: the wrapper (mask vector, reconstruction head) is what DDP wraps; the frozen task
    # head stays out of the reducer. Each rank draws its own masks, so this checks the run, not equality.
    from multiseq.checkpoint import load_model

    out = tmp_path / "pt"
    args = ["pretrain", *ARGS[1:ARGS.index("--val-split")], "--threads", "1", "--quiet", "--out", str(out)]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "multiseq.cli", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [3, 6] and all(r["stage"] == "pretrain" for r in recs)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["stage"] == "pretrain"
    assert load_model(out / "model.safetensors").config.width == 16

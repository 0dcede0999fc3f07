"""`multiseq bench --train`: the structure of the record at tiny size (no timing assertions)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from multiseq.bench.train import TrainSpec, benchmark_train, train_tables
from multiseq.errors import ConfigError

TINY = {"width": 16, "depth": 1}
FIELDS = {"step_ms_median", "step_ms_min", "steps_per_s", "samples_per_s", "flops_per_step", "achieved_gflops",
          "matmul_gflops", "matmul_size", "mfu", "mfu_best", "repeats", "times_ms"}


def _check(e: dict, batch: int) -> None:
    assert e["status"] == "ok", e
    assert FIELDS <= set(e)
    assert e["repeats"] >= 5 and len(e["times_ms"]) == e["repeats"]
    assert 0 < e["step_ms_min"] <= e["step_ms_median"]
    assert e["samples_per_s"] == pytest.approx(batch * e["steps_per_s"])
    assert e["flops_per_step"] > 0 and e["matmul_gflops"] > 0
    assert math.isfinite(e["mfu"]) and e["mfu"] > 0
    assert e["mfu"] == pytest.approx(e["achieved_gflops"] / e["matmul_gflops"])


def test_train_mode_threads_and_two_processes():
    spec = TrainSpec("s4d_bytes_tiny", batch=4, length=32, override=TINY, threads=(1,), procs=(1, 2), warmup=2)
    rec = benchmark_train(spec, log=lambda s: None)
    assert rec["kind"] == "train" and rec["config"]["settings"] == [[1, 1, "fp32"], [2, 1, "fp32"]]
    one, two = rec["results"]
    assert (one["procs"], one["threads"], two["procs"], two["threads"]) == (1, 1, 2, 1)
    for e in rec["results"]:
        _check(e, 4)
    assert one["scaling"] == pytest.approx(1.0)
    # The group counts the FLOPs of the whole batch: the same model work as one process.
    assert two["flops_per_step"] == pytest.approx(one["flops_per_step"], rel=0.05)
    md = train_tables(rec)
    assert "| 1p x 1t |" in md and "| 2p x 1t |" in md and "MFU" in md


def test_train_mode_render_preset_through_the_cli(tmp_path):
    out, md = tmp_path / "t.json", tmp_path / "t.md"
    cmd = [sys.executable, "-m", "multiseq.cli", "bench", "--train", "--model", "s4d_render_tiny", "--override",
           json.dumps(TINY), "--batch", "2", "--length", "8", "--threads", "1", "--min-time", "0", "--precision", "fp32,bf16",
           "--json", str(out), "--markdown", str(md)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(out.read_text())
    for e in rec["results"]:
        _check(e, 2)
    assert [e["precision"] for e in rec["results"]] == ["fp32", "bf16"]
    assert rec["config"]["model"] == "s4d_render_tiny" and "| 1p x 1t |" in md.read_text()


def test_train_spec_refuses_bad_settings():
    with pytest.raises(ConfigError, match="split evenly"):
        TrainSpec("s4d_bytes_tiny", batch=3, length=8, procs=(2,))
    with pytest.raises(ConfigError, match="at least 5"):
        TrainSpec("s4d_bytes_tiny", batch=4, length=8, repeats=2)
    spec = TrainSpec("m", batch=4, length=8, threads=(1, 2), procs=(1, 2), precision=("fp32", "bf16"))
    assert spec.settings() == [(1, 1, "fp32"), (1, 2, "fp32"), (2, 1, "fp32"), (1, 1, "bf16"), (1, 2, "bf16"),
                               (2, 1, "bf16")]
    with pytest.raises(ConfigError, match="precision"):
        TrainSpec("m", batch=4, length=8, precision=("fp16",))


@pytest.mark.parametrize("preset", ["s4d_bytes_tiny", "s4d_render_tiny"])
def test_bf16_autocast_step_matches_fp32(preset):
    """bf16 autocast (the measured throughput tactic, `--precision bf16`) changes numbers only at bf16 precision:
    the loss of one step within 2% and every parameter's gradient pointing the same way (cosine > 0.99)."""
    import torch
    import torch.nn.functional as F

    from multiseq.bench.train_step import _inputs
    from multiseq.models import create_model

    torch.manual_seed(0)
    model = create_model(preset, width=32)
    x, mask, y = _inputs(model, 4, 96)
    grads, losses = [], []
    for bf16 in (False, True):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x, mask)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        losses.append(loss.item())
        grads.append([p.grad.detach().clone() for p in model.parameters()])
    assert losses[1] == pytest.approx(losses[0], rel=2e-2)
    for g32, g16 in zip(*grads):
        assert g16.dtype == torch.float32 and torch.isfinite(g16).all()
        if g32.norm() > 1e-6:
            assert F.cosine_similarity(g32.flatten(), g16.flatten(), dim=0) > 0.99

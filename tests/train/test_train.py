"""Training pieces against independent truths: schedule formula, parameter groups, data stream, accumulation,
evaluation counts, the run directory, and refusal of bad checkpoints."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

import multiseq
from multiseq.blocks.registry import mark_optim
from multiseq.checkpoint import (
    list_training_checkpoints,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_training_checkpoint,
)
from multiseq.config import AdapterConfig
from multiseq.tasks.toy import count_task
from multiseq.errors import CheckpointError, ConfigError
from multiseq.train import (
    InMemoryDataset,
    TrainConfig,
    evaluate,
    fit,
    lr_factor,
    param_groups,
    predict,
    stream_indices,
)
from tests.train._tiny import TINY
from tests.train._tiny import tiny_model as _tiny_model
from tests.train._tiny import count_data as _data

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # one torch thread: tiny models, shared machine


def test_lr_schedule_formula():
    total, warm = 100, 10
    assert [lr_factor(s, total, warm) for s in range(3)] == [0.1, 0.2, pytest.approx(0.3)]
    assert lr_factor(9, total, warm) == 1.0  # warm-up ends at full lr
    assert lr_factor(10, total, warm) == 1.0  # cosine starts at 1
    mid = 10 + 45
    assert lr_factor(mid, total, warm) == pytest.approx(0.5)  # cos(pi/2): half way
    assert lr_factor(total, total, warm) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(total, total, warm, final_ratio=0.1) == pytest.approx(0.1)
    vals = [lr_factor(s, total, warm) for s in range(warm, total)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))  # monotone decay


def test_param_groups_honour_mark_optim():
    model = multiseq.create_model("local_bytes_tiny", **TINY)
    special = model.backbone.layers[0].ffn.net[0].weight
    mark_optim(special, lr=1e-4, weight_decay=0.0)
    groups = param_groups(model, lr=1e-2, weight_decay=0.05)
    by_name = {n: g for g in groups for n in g["names"]}
    name = next(n for n, p in model.named_parameters() if p is special)
    assert by_name[name]["lr"] == 1e-4 and by_name[name]["weight_decay"] == 0.0 and len(by_name[name]["params"]) == 1
    for n, p in model.named_parameters():
        if n != name:
            assert by_name[n]["lr"] == 1e-2
            assert by_name[n]["weight_decay"] == (0.05 if p.ndim >= 2 else 0.0)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # The schedule scales every group's own base lr.
    opt = torch.optim.AdamW(groups)
    assert {g["base_lr"] for g in opt.param_groups} == {1e-2, 1e-4}


def test_stream_is_permutation_per_epoch_and_position_addressable():
    n, seed = 10, 3
    whole = stream_indices(n, seed, 0, 35)
    for e in range(3):
        assert sorted(whole[e * n : (e + 1) * n]) == list(range(n))
    assert whole[:n] != whole[n : 2 * n]  # epochs are reshuffled
    for start in (0, 4, 9, 10, 17):
        assert stream_indices(n, seed, start, 13) == whole[start : start + 13]
    assert stream_indices(n, seed + 1, 0, n) != whole[:n]


def test_optimizer_state_round_trip_without_pickle():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, desc = optimizer_to_tensors(opt)
    json.dumps(desc)  # the non-tensor part is plain JSON
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    opt2.load_state_dict(optimizer_from_tensors(tensors, json.loads(json.dumps(desc))))
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for key in a["state"][k]:
            assert torch.equal(a["state"][k][key], b["state"][k][key])


def test_accumulation_matches_one_big_batch():
    train = _data(n=32)
    # A larger Adam eps keeps the update a smooth function of the gradient: attention's key bias has an exactly
    # zero true gradient, and plain Adam would turn its rounding noise into full-size steps of either sign.
    common = dict(steps=3, batch_size=8, lr=1e-2, progress=False, seed=1, eps=1e-4)
    big = fit(_tiny_model(), train, **common)
    acc = fit(_tiny_model(), train, accumulate=4, **common)
    for (n, p), q in zip(big.model.named_parameters(), acc.model.parameters()):
        torch.testing.assert_close(p, q, atol=2e-6, rtol=1e-5, msg=n)


def test_evaluate_counts_match_predictions():
    data = _data("val", n=40)
    model = multiseq.create_model("local_bytes_tiny", num_classes=2, **TINY)
    res = evaluate(model, data, batch_size=16)
    pred, probs = predict(model, [data[i][0] for i in range(len(data))], batch_size=7)
    truth = torch.tensor([data[i][1] for i in range(len(data))])
    assert res["n"] == 40 and probs.shape == (40, 2)
    assert res["accuracy"] == pytest.approx((pred == truth).float().mean().item())
    conf = torch.tensor(res["confusion"])
    assert conf.sum() == 40 and conf.sum(1).tolist() == torch.bincount(truth, minlength=2).tolist()
    nll = torch.nn.functional.nll_loss(probs.log(), truth).item()
    assert res["loss"] == pytest.approx(nll, rel=1e-4)


def test_fit_writes_run_dir_and_learns(tmp_path):
    out = tmp_path / "run"
    res = fit(_tiny_model(), _data(n=64), _data("val", n=32), steps=12, batch_size=8, lr=3e-3, out=out,
              progress=False, checkpoint_every=4, keep=2, log_every=3)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.jsonl", "checkpoints", "model.safetensors", "curves.png", "confusion.png"} <= names
    assert [p.name for p in list_training_checkpoints(out / "checkpoints")] == ["step_00000008", "step_00000012"]
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["kind"] == "train"] == [3, 6, 9, 12]
    assert recs[-1]["kind"] == "eval" and recs[-1]["n"] == 32
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["steps"] == 12 and cfg["class_names"] == ["b>=a", "a>b"]
    loaded = multiseq.checkpoint.load_model(out / "model.safetensors")
    for p, q in zip(loaded.parameters(), res.model.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(_tiny_model(), _data(n=64), steps=12, batch_size=8, out=out, progress=False)


def _resume(out, **kw):
    opts = dict(steps=30, batch_size=8, lr=3e-3, checkpoint_every=5, keep=2, log_every=5)
    return fit(kw.pop("model", _tiny_model()), _data(n=64), out=out, resume=True, progress=False, **{**opts, **kw})


def test_resume_refuses_bad_checkpoints(tmp_path):
    out = tmp_path / "run"
    fit(_tiny_model(), _data(n=64), steps=10, batch_size=8, lr=3e-3, out=out, progress=False, checkpoint_every=5, keep=2)
    ck = list_training_checkpoints(out / "checkpoints")
    latest, older = ck[-1], ck[0]
    state = latest / "state.safetensors"
    good = state.read_bytes()

    state.write_bytes(good[: len(good) // 3])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        read_training_checkpoint(latest)
    bad = bytearray(good)
    bad[-5] ^= 0xFF  # flip bits in the last tensor (the data, not the header)
    state.write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match="sha256"):
        read_training_checkpoint(latest)
    # Tamper with the JSON state (data position) while keeping the file well-formed.
    hlen = int.from_bytes(good[:8], "little")
    header = good[8 : 8 + hlen].decode()
    forged = header.replace('\\"position\\": 80', '\\"position\\": 999')
    assert forged != header
    state.write_bytes(len(forged).to_bytes(8, "little") + forged.encode() + good[8 + hlen :])
    with pytest.raises(CheckpointError, match="sha256"):
        read_training_checkpoint(latest)
    state.write_bytes(good)
    shutil.copy(older / "model.safetensors", latest / "model.safetensors")  # files from two different steps
    with pytest.raises(CheckpointError, match="different checkpoints"):
        read_training_checkpoint(latest)
    shutil.copy(older / "state.safetensors", latest / "state.safetensors")
    (latest / "state.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no state.safetensors"):
        read_training_checkpoint(latest)
    with pytest.raises(CheckpointError, match="no state.safetensors"):
        _resume(out, steps=10)


def test_resume_refuses_changed_settings(tmp_path):
    out = tmp_path / "run"
    fit(_tiny_model(), _data(n=64), steps=5, batch_size=8, lr=3e-3, out=out, progress=False, checkpoint_every=5)
    with pytest.raises(CheckpointError, match=r"lr: 0.003 \(run\) vs 0.01 \(now\)"):
        _resume(out, steps=5, lr=1e-2)
    with pytest.raises(CheckpointError, match="width: 16 .* vs 24"):
        _resume(out, steps=5, model=_tiny_model().replace(width=24))
    _resume(out, steps=5, log_every=2)  # logging cadence may change
    bad = TrainConfig.from_dict
    with pytest.raises(ConfigError, match="unknown train config keys"):
        bad({"steps": 1, "lrr": 3})
    with pytest.raises(ConfigError, match="exactly one of steps or epochs"):
        TrainConfig()


def test_data_contract_errors():
    pairs = InMemoryDataset([("a", "b"), ("c", "d")], [0, 1], 2, AdapterConfig("bytes", max_length=8), pair=True)
    with pytest.raises(ConfigError, match="single-input head"):
        fit(multiseq.create_model("local_bytes_tiny", num_classes=2, **TINY), pairs, steps=1, batch_size=2, progress=False)
    res = fit(_tiny_model(), pairs, steps=1, batch_size=2, progress=False)  # from a preset: dual head chosen
    assert res.model.is_dual
    with pytest.raises(ConfigError, match="divisible"):
        fit(_tiny_model(), _data(n=8), steps=1, batch_size=6, accumulate=4, progress=False)


def test_eval_and_predict_commands_agree_with_the_python_api(tmp_path, capsys):
    from multiseq.cli import main

    out = tmp_path / "run"
    res = fit(_tiny_model(), _data(n=32), steps=4, batch_size=8, out=out, progress=False)
    opts = ["--task", "multiseq.tasks.toy:count_task", "--task-option", "length=24", "--task-option", "n=40"]
    capsys.readouterr()
    assert main(["eval", str(out), *opts, "--split", "val", "--json", "--quiet"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = evaluate(res.model, count_task("val", n=40, length=24))
    assert got["accuracy"] == want["accuracy"] and got["confusion"] == want["confusion"]
    texts = ["aaaaaaaaaaaabbbc", "bbbbbbbbbbbbbaac"]
    assert main(["predict", str(out), *texts, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["class"] for r in lines] == res.model.predict(texts).tolist()
    assert {r["label"] for r in lines} <= {"b>=a", "a>b"}

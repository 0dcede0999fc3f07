"""`pretrain` (run directory, exact resume with the wrapper's parameters), `fit(init=)` (body carried over
exactly, fresh head, config mismatch named), and wall-clock budgets (deterministic step count, clean stop)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from multiseq.checkpoint import list_training_checkpoints, load_model, read_training_checkpoint
from multiseq.errors import ConfigError
from multiseq.train import PretrainConfig, body_state, fit, pretrain
from multiseq.train import loop as loop_module
from tests.train._tiny import count_data
from tests.train._tiny import tiny_model as _cfg

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # one torch thread: tiny models, shared machine


def _data(split="train", n=48):
    return count_data(split, n)


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_pretrain_run_directory(tmp_path):
    out = tmp_path / "pt"
    res = pretrain(_cfg(), _data(), steps=6, batch_size=8, out=out, progress=False, log_every=3, checkpoint_every=3,
                   objective=PretrainConfig(mask_ratio=0.3))
    assert {"config.json", "metrics.jsonl", "checkpoints", "model.safetensors", "curves.png"} <= {p.name for p in out.iterdir()}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["stage"] == "pretrain" and cfg["pretrain"]["mask_ratio"] == 0.3
    assert cfg["pretrain"]["resolved"] == {"objective": "masked", "mask_ratio": 0.3, "span": 1}
    train = [r for r in _records(out) if r["kind"] == "train"]
    assert [r["step"] for r in train] == [3, 6] and all("accuracy" in r for r in train)  # byte tokens: token accuracy
    assert not [r for r in _records(out) if r["kind"] == "eval"]  # no validation pass
    model = load_model(out / "model.safetensors")  # the SequenceModel, head included
    for (k, p), q in zip(model.state_dict().items(), res.model.state_dict().values()):
        assert torch.equal(p, q), k
    _, _, tensors, _ = read_training_checkpoint(list_training_checkpoints(out / "checkpoints")[-1])
    assert {"pretrain/mask_token", "pretrain/recon.weight", "pretrain/recon.bias"} <= set(tensors)
    assert all(p.requires_grad for p in res.model.parameters())  # the frozen head is handed back trainable


def test_pretrain_resume_is_bit_identical(tmp_path, monkeypatch):
    opts = dict(steps=8, batch_size=8, lr=3e-3, checkpoint_every=2, keep=2, log_every=1, progress=False,
                deterministic=True)
    model = _cfg(dropout=0.1)  # dropout and masking draw from the RNG, which must be restored
    pretrain(model, _data(), out=tmp_path / "ref", **opts)

    real = loop_module.save_checkpoint

    def crash_after_step_4(ctx, done, *a, **k):
        real(ctx, done, *a, **k)
        if done == 4:
            raise KeyboardInterrupt  # killed right after the step-4 checkpoint

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        pretrain(model, _data(), out=tmp_path / "run", **opts)
    monkeypatch.setattr(loop_module, "save_checkpoint", real)
    pretrain(model, _data(), out=tmp_path / "run", resume=True, **opts)
    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(tmp_path / "run" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ck_a = read_training_checkpoint(list_training_checkpoints(tmp_path / "ref" / "checkpoints")[-1])[2]
    ck_b = read_training_checkpoint(list_training_checkpoints(tmp_path / "run" / "checkpoints")[-1])[2]
    for k in ("pretrain/mask_token", "pretrain/recon.weight"):
        assert torch.equal(ck_a[k], ck_b[k]), k
    key = lambda r: (r["kind"], r["step"], r.get("loss"), r.get("accuracy"))  # noqa: E731
    assert [key(r) for r in _records(tmp_path / "run")] == [key(r) for r in _records(tmp_path / "ref")]


def test_init_carries_the_body_exactly_and_the_head_is_fresh(tmp_path):
    pt = pretrain(_cfg(), _data(), steps=3, batch_size=8, out=tmp_path / "pt", progress=False).model
    ft = fit(None, _data(), init=tmp_path / "pt", steps=1, batch_size=8, lr=1e-12, weight_decay=0.0,
             progress=False, out=tmp_path / "ft")
    fresh = fit(None, _data(), init=tmp_path / "pt" / "model.safetensors", steps=1, batch_size=8, lr=1e-12,
                progress=False, grad_clip=0.0).model
    before = body_state(pt)
    # lr ~ 0: one step moves nothing measurable, so the body must equal the pretrained one.
    for k, v in body_state(ft.model).items():
        torch.testing.assert_close(v, before[k], atol=1e-9, rtol=0, msg=k)
    with torch.no_grad():
        from multiseq.train.init import init_from

        net, info = init_from(tmp_path / "pt", None, _data())
    for k, v in body_state(net).items():
        assert torch.equal(v, before[k]), k  # exact copy
    heads = zip(net.head.state_dict().values(), pt.head.state_dict().values())
    assert any(not torch.equal(a, b) for a, b in heads)  # re-initialised
    assert info["sha256"] and fresh.config.num_classes == 2
    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert cfg["init"]["path"] == str(tmp_path / "pt") and cfg["stage"] == "train"
    with pytest.raises(ConfigError, match=r"width, depth|depth, width|depth.*width"):
        fit(_cfg(width=24, depth=2), _data(), init=tmp_path / "pt", steps=1, batch_size=8, progress=False)
    # A head-only difference is allowed; the caller's config is used.
    fit(_cfg(head={"kind": "mlp"}), _data(), init=tmp_path / "pt", steps=1, batch_size=8, progress=False)


def test_init_keeps_the_pretrained_adapter_over_the_datas(tmp_path):
    # The data's adapter (bytes, 24 positions) differs from the model's (16): the pretrained file's adapter wins,
    # as it does when a rendered-text model is pretrained on a text dataset whose default adapter is bytes.
    from multiseq.train import model_for_data

    net = model_for_data(_cfg(), _data(), adapter={"kind": "bytes", "max_length": 16, "options": {}})
    pretrain(net, _data(), steps=2, batch_size=8, out=tmp_path / "pt", progress=False)
    ft = fit(None, _data(), init=tmp_path / "pt", steps=1, batch_size=8, progress=False).model
    assert ft.config.adapter.max_length == 16 and _data().adapter.max_length == 24


def test_budget_fixes_a_step_count_and_stops_cleanly(tmp_path):
    out = tmp_path / "b"
    res = fit(_cfg(), _data(), _data("val", n=16), budget_minutes=0.05, batch_size=8, out=out, progress=False,
              log_every=1000)
    total = json.loads((out / "config.json").read_text())["budget"]["total_steps"]
    recs = _records(out)
    assert [r["total_steps"] for r in recs if r["kind"] == "budget"] == [total] and total >= 1
    end = [r for r in recs if r["kind"] == "budget_end"][-1]
    done = [r for r in recs if r["kind"] == "train"][-1]["step"]
    assert end["step"] == done <= total and end["total_steps"] == total
    assert end["stopped_at_budget"] == (done < total) and end["wall_s"] > 0
    assert [r["step"] for r in recs if r["kind"] == "eval"] == [done]  # the final evaluation happened
    assert (out / "model.safetensors").is_file() and res.metrics["budget"]["step"] == done
    assert list_training_checkpoints(out / "checkpoints")[-1].name == f"step_{done:08d}"
    pt = pretrain(_cfg(), _data(), budget_minutes=0.02, batch_size=8, out=tmp_path / "p", progress=False)
    assert pt.metrics["budget"]["total_steps"] >= 1 and (tmp_path / "p" / "model.safetensors").is_file()


def test_budget_run_is_the_step_run_of_its_recorded_length(tmp_path):
    # The timing rehearsal is undone exactly: with the cap reached, the run equals steps=20 bit for bit.
    common = dict(batch_size=8, lr=3e-3, progress=False, deterministic=True, seed=3)
    a = fit(_cfg(dropout=0.1), _data(), steps=20, budget_minutes=5.0, **common)
    b = fit(_cfg(dropout=0.1), _data(), steps=20, **common)
    assert a.metrics["budget"]["total_steps"] == 20 and not a.metrics["budget"]["stopped_at_budget"]
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k

"""The benchmark harness: end to end at tiny sizes, JSON schema, failures recorded, derived figures exact.

No test here asserts a timing: derived figures are checked on synthetic results against their formulas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from multiseq.bench import core as bench
from multiseq.bench.costs import BWD_FACTOR, block_costs, floor_ms
from multiseq.blocks import build_block
from multiseq.errors import ConfigError

REQUIRED = {"block", "length", "width", "mode", "median_ms", "min_ms", "peak_mem_mb", "status", "threads"}


def test_cli_end_to_end_tiny(tmp_path):
    out, png, md = tmp_path / "b.json", tmp_path / "b.png", tmp_path / "b.md"
    cmd = [sys.executable, "-m", "multiseq.cli", "bench", "--blocks", "local", "--lengths", "24", "--width", "16",
           "--mode", "fwdbwd", "--threads", "1", "--min-time", "0", "--warmup", "1", "--options",
           '{"local": {"window": 8, "heads": 2}, "attention": {"heads": 2}, "attention_explicit": {"heads": 2}}',
           "--json", str(out), "--plot", str(png), "--markdown", str(md)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert rec["schema"] == bench.SCHEMA
    m = rec["machine"]
    assert m["matmul_gflops"] > 0 and m["copy_gbs"] > 0 and m["threads"] == 1 and m["torch"] == torch.__version__
    got = {(e["block"], e["length"]) for e in rec["results"]}
    assert got == {(b, 24) for b in ("attention", "attention_explicit", "local")}
    idx = {(e["block"], e["length"]): e for e in rec["results"]}
    for e in rec["results"]:
        assert REQUIRED <= set(e), e
        assert e["status"] == "ok", e
        assert 0 < e["min_ms"] <= e["median_ms"] and e["repeats"] >= 5 and len(e["times_ms"]) == e["repeats"]
        assert e["peak_mem_mb"] >= 0 and e["width"] == 16 and e["mode"] == "fwdbwd"
        att = idx[("attention", e["length"])]
        assert e["speedup_vs_attention"] == pytest.approx(att["median_ms"] / e["median_ms"])
        assert e["floor_ms"] > 0 and e["floor_ratio"] == pytest.approx(e["median_ms"] / e["floor_ms"])
    assert idx[("local", 24)]["cost_params"]["window"] == 8
    blocks = {s["block"] for s in rec["summary"]}
    assert blocks == {"attention", "attention_explicit", "local"}
    assert "exponent_time" in rec["summary"][0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| local |" in md.read_text() and "| local |" in r.stdout


def test_timeout_and_oom_are_recorded():
    job = {"kind": "block", "name": "attention", "length": 16, "width": 8, "batch": 1, "mode": "fwd",
           "dtype": "float32", "device": "cpu", "threads": 1, "repeats": 5, "warmup": 1, "options": {"heads": 2}}
    r = bench.run_worker(job, timeout=0.05)
    assert r["status"] == "timeout" and "0.05" in r["error"]
    # The L x L scores at L=4096 need 64 MB per head; a 16 MB cap turns that into a recorded `oom`.
    big = {**job, "name": "attention_explicit", "length": 4096, "mem_cap_mb": 16}
    r = bench.run_worker(big, timeout=300)
    assert r["status"] == "oom", r


def _fake_worker(table):
    def run(job, timeout):
        key = (job["name"], job["length"])
        out = table.get(key, {"status": "ok", "median_ms": float(job["length"]), "min_ms": 1.0, "peak_mem_mb": 1.0})
        return dict(out)

    return run


def test_orchestration_keeps_failures_and_skips_hopeless(monkeypatch):
    table = {
        ("attention_explicit", 64): {"status": "oom", "error": "not enough memory"},
        ("attention", 32): {"status": "ok", "median_ms": 2000.0, "min_ms": 1.0, "peak_mem_mb": 1.0},
        ("local", 32): {"status": "error", "error": "ValueError: boom"},
    }
    calls = []
    fake = _fake_worker(table)
    monkeypatch.setattr(bench, "run_worker", lambda job, timeout: calls.append(job["name"]) or fake(job, timeout))
    monkeypatch.setattr(bench, "measure_machine", lambda *a: {"matmul_gflops": 100.0, "copy_gbs": 10.0, "threads": 1})
    spec = bench.BenchSpec(("local",), (16, 32, 64, 128), width=8, modes=("fwd",), threads=(1,), timeout=60)
    rec = bench.benchmark(spec, log=lambda s: None)
    res = {(e["block"], e["length"]): e for e in rec["results"]}
    assert len(res) == 12  # nothing dropped
    assert res[("attention_explicit", 128)]["status"] == "oom"  # not run after an OOM at 64
    assert "not run" in res[("attention_explicit", 128)]["error"]
    # attention took 2 s at 32: 8 calls at 4x the time predicts 64 s at 64 > 60 s timeout.
    assert res[("attention", 64)]["status"] == "timeout" and "predicted" in res[("attention", 64)]["error"]
    assert res[("attention", 128)]["status"] == "timeout"
    assert res[("local", 32)]["status"] == "error" and res[("local", 64)]["status"] == "ok"
    assert calls.count("attention_explicit") == 3 and calls.count("attention") == 2 and calls.count("local") == 4
    summ = {s["block"]: s for s in rec["summary"]}
    assert summ["attention"]["not_ok"] == {"64": "timeout", "128": "timeout"}


def _rec(results, gflops=100.0, gbs=10.0):
    return {"machine": {"matmul_gflops": gflops, "copy_gbs": gbs, "threads": 2,
                        "by_threads": {"2": {"matmul_gflops": gflops, "copy_gbs": gbs}}},
            "results": results}


def _e(block, L, ms, mem, mode="fwdbwd", **kw):
    return {"block": block, "length": L, "mode": mode, "threads": 2, "status": "ok", "median_ms": ms,
            "min_ms": ms * 0.9, "peak_mem_mb": mem, **kw}


def test_derived_figures_from_synthetic_results():
    Ls = [1024, 2048, 4096, 8192]
    res = []
    for L in Ls:
        s = L / 1024
        res.append(_e("attention", L, 10 * s**2, 5 * s))
        if L < 8192:
            res.append(_e("attention_explicit", L, 20 * s**2, 100 * s**2))
        else:
            res.append({"block": "attention_explicit", "length": L, "mode": "fwdbwd", "threads": 2, "status": "oom"})
        res.append(_e("ls", L, 2 * s**1.1, 4 * s, flops_fwd=1e9 * s, bytes_fwd=1e8 * s))
        res.append(_e("peer:long-short-transformer", L, 3 * s, 8 * s))
    rec = bench.derive(_rec(res))
    idx = {(e["block"], e["length"]): e for e in rec["results"]}
    e = idx[("ls", 4096)]
    assert e["speedup_vs_attention"] == pytest.approx(160 / (2 * 4**1.1))
    assert e["mem_vs_attention_explicit"] == pytest.approx(16 / 1600)
    assert e["mem_vs_attention"] == pytest.approx(16 / 20)
    assert e["speedup_vs_peer"]["peer:long-short-transformer"] == pytest.approx(12 / (2 * 4**1.1))
    # Floor: fwdbwd is 3x the forward; compute 3e9 / 1e11 s = 30 ms beats traffic 3e8 / 1e10 s = 30 ms (equal here).
    assert e["floor_ms"] == pytest.approx(max(BWD_FACTOR * 4e9 / 1e11, BWD_FACTOR * 4e8 / 1e10) * 1e3)
    assert e["floor_ratio"] == pytest.approx(e["median_ms"] / e["floor_ms"])
    # At 8K attention_explicit was out of memory: its memory is extrapolated along its quadratic growth.
    e8 = idx[("ls", 8192)]
    assert e8["mem_ref_extrapolated"] and e8["mem_vs_attention_explicit"] == pytest.approx(32 / 6400)
    summ = {s["block"]: s for s in rec["summary"]}
    assert summ["ls"]["exponent_time"] == pytest.approx(1.1)
    assert summ["ls"]["exponent_mem"] == pytest.approx(1.0)
    assert summ["attention"]["exponent_time"] == pytest.approx(2.0)
    assert summ["attention_explicit"]["not_ok"] == {"8192": "oom"}
    t = summ["ls"]["targets"]
    assert t["exponent_time"]["met"] and t["mem_vs_attention_explicit"]["met"]
    sp = 640 / (2 * 8**1.1)
    assert t["speedup_vs_attention"]["target"] == 8.0 and t["speedup_vs_attention"]["met"] == (sp >= 8)
    assert t["speedup_vs_peer"]["value"] == pytest.approx(24 / (2 * 8**1.1))
    assert t["speedup_vs_peer"]["met"] is False
    assert t["speedup_vs_peer"]["missed_by_factor"] == pytest.approx(1.5 / (24 / (2 * 8**1.1)))
    assert summ["attention"]["targets"] == {}  # quadratic baselines carry no linear-time targets
    # The same record derived from the minimum times: every time ratio now uses min_ms.
    by_min = bench.derive(json.loads(json.dumps(rec)), "min_ms")
    e_min = {(x["block"], x["length"]): x for x in by_min["results"]}[("ls", 4096)]
    assert by_min["derived_from"] == "min_ms" and e_min["floor_ratio"] == pytest.approx(0.9 * e["floor_ratio"])
    with pytest.raises(ValueError, match="median_ms or min_ms"):
        bench.derive(_rec(res), "mean_ms")


def test_fit_exponent():
    assert bench.fit_exponent([(x, 3 * x**1.7) for x in (2, 4, 8, 16)]) == pytest.approx(1.7)
    assert bench.fit_exponent([(4, 1.0)]) is None
    assert bench.fit_exponent([(4, 1.0), (4, 2.0)]) is None


def test_costs_formula_block_method_and_counted():
    L, D = 512, 32
    att = build_block("attention", D, heads=4)
    c = block_costs("attention", att, L, D, batch=2)
    assert c["flops_fwd"] == 2 * (8 * L * D * D + 4 * L * L * D) and c["cost_source"] == "formula:attention"
    ex = block_costs("attention_explicit", build_block("attention_explicit", D, heads=4), L, D)
    assert ex["bytes_fwd"] - c["bytes_fwd"] / 2 == 4 * 4 * 4 * L * L and ex["cost_params"]["heads"] == 4

    class Own(torch.nn.Module):
        def flops(self, L, D):
            return 7.0 * L * D

    own = block_costs("attention", Own(), L, D)
    assert own["flops_fwd"] == 7.0 * L * D and own["cost_source"] == "block+formula:attention"
    unknown = block_costs("newblock", torch.nn.Linear(D, D), L, D)
    assert unknown["flops_fwd"] is None and unknown["cost_source"] == "counted"
    assert floor_ms(2e9, 1e9, 100.0, 10.0) == pytest.approx(100.0)  # traffic-bound: 1e9 B at 10 GB/s
    assert floor_ms(None, None, 100.0, 10.0) is None


def test_missing_peer_is_a_clear_error(monkeypatch):
    from multiseq.bench import peers as bench_peers

    monkeypatch.setattr(bench_peers, "peer_available", lambda name: False)
    with pytest.raises(ModuleNotFoundError, match=r"pip install mega-pytorch"):
        bench_peers.build_peer("mega-pytorch", 16, {})
    with pytest.raises(Exception, match="known peers"):
        bench_peers.get_peer("nope")


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="at least 5"):
        bench.BenchSpec(("local",), (16,), repeats=3)
    with pytest.raises(ConfigError, match="unknown mode"):
        bench.BenchSpec(("local",), (16,), modes=("bwd",))
    with pytest.raises(Exception, match="block"):
        bench._check_blocks(["lcoal"])
    assert bench._predicted_s([], 2048, 8, True) is None
    assert bench._predicted_s([(1024, 10.0)], 2048, 8, True) == pytest.approx(8 * 0.01 * 4)
    assert bench._predicted_s([(1024, 10.0)], 2048, 8, False) == pytest.approx(8 * 0.01 * 2)
    # A linear block's own slope (here 1.5) is used; a noisy drop never predicts less than linear growth.
    assert bench._predicted_s([(1024, 10.0), (4096, 80.0)], 8192, 8, False) == pytest.approx(8 * 0.08 * 2**1.5)
    assert bench._predicted_s([(1024, 90.0), (4096, 80.0)], 8192, 8, False) == pytest.approx(8 * 0.08 * 2)


def test_fused_check_runs_on_cpu_and_catches_a_broken_fused_path(monkeypatch):
    from multiseq.bench import fused as bench_fused
    from multiseq.blocks.attention import LocalAttention

    rec = bench_fused.run(["local"], [17], width=16, batch=2, device="cpu", reps=1, atol=1e-5, budget_s=600,
                          log=lambda s: None)
    assert rec["all_parity_ok"] and [r["status"] for r in rec["results"]] == ["ok"]
    assert all(r["fused_paths_used"] == [] for r in rec["results"])  # nothing is fused on CPU
    # A "fused" path that is wrong must fail the parity check: perturb the output only under the auto policy.
    orig = LocalAttention.attend

    def broken(self, q, k, v, mask):
        out = orig(self, q, k, v, mask)
        return out * 1.01 if os.environ.get("MULTISEQ_KERNELS") == "auto" else out

    monkeypatch.setattr(LocalAttention, "attend", broken)
    bad = bench_fused.check_block("local", 17, width=16, batch=1, device="cpu", reps=1, atol=1e-5)
    assert bad["parity_ok"] is False and bad["parity"]["output"]["pass"] is False


def test_gpu_script_parses():
    r = subprocess.run(["bash", "-n", os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "gpu.sh")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_peers_run_right_after_their_block():
    plan = bench._plan(["attention", "ls", "s4d", "dss"], ["dss", "long-short-transformer", "gss"], [1], [2])
    assert [(k, n) for k, n, _ in plan] == [("block", "attention"), ("block", "ls"), ("peer", "long-short-transformer"),
                                            ("block", "s4d"), ("peer", "dss"), ("block", "dss"), ("peer", "gss")]


def test_merged_runs_keep_their_own_rates():
    short = _rec([_e("attention", 1024, 10, 5), _e("ls", 1024, 5, 2, flops_fwd=1e9, bytes_fwd=0)], gflops=100.0)
    long = _rec([_e("attention", 4096, 160, 20), _e("ls", 4096, 16, 8, flops_fwd=4e9, bytes_fwd=0),
                 _e("ls", 1024, 4, 2, flops_fwd=1e9, bytes_fwd=0)], gflops=50.0)
    rec = bench.derive(bench.merge_records([short, long]))
    idx = {(e["block"], e["length"]): e for e in rec["results"]}
    assert len(rec["results"]) == 4 and idx[("ls", 1024)]["median_ms"] == 4  # the later run wins
    assert idx[("ls", 1024)]["floor_ms"] == pytest.approx(3e9 / 50e9 * 1e3)
    assert idx[("attention", 1024)]["rates"]["matmul_gflops"] == 100.0
    assert {s["block"]: s for s in rec["summary"]}["ls"]["exponent_time"] == pytest.approx(1.0)


def test_interleaved_group_runs_every_member_in_turns():
    opts = {"local": {"window": 8, "heads": 2}, "attention": {"heads": 2}, "attention_explicit": {"heads": 2}}
    spec = bench.BenchSpec(("local",), (24, 40), width=16, modes=("fwdbwd",), threads=(1,), min_time_s=0, warmup=1,
                           options=opts, interleave=True)
    with pytest.raises(Exception):
        spec.width = 8  # a frozen record
    rec = bench.benchmark(spec, log=lambda s: None)
    assert rec["config"]["interleave"] is True
    got = [(e["block"], e["length"]) for e in rec["results"]]
    assert got == [(b, L) for L in (24, 40) for b in ("attention", "attention_explicit", "local")]
    for e in rec["results"]:
        assert e["status"] == "ok" and e["interleaved"] and e["repeats"] >= 5, e
        assert 0 < e["min_ms"] <= e["median_ms"] and e["peak_mem_mb"] >= 0 and e["flops_counted"] > 0
    assert {(e["block"], e["length"]): e for e in rec["results"]}[("local", 24)]["options"] == {"window": 8, "heads": 2}

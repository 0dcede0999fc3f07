"""The robustness examples run end to end with --tiny: IMDb (bytes, rendered, TF-IDF) on the IMDb fixture and
CIFAR-10 (ViT patches, pixel sequence) on the CIFAR fixture, writing results, tables and the plot with intervals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IMDB, CIFAR = FIXTURES / "aclImdb_mini.tar.gz", FIXTURES / "cifar10_mini.tar.gz"


def _run(script: str, data: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "--tiny", "--quiet", "--data", str(data), "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=out,
    )


def _check_outputs(out: Path, models: set[str], noises: set[str], severities: set[float]) -> dict:
    results = json.loads((out / "results.json").read_text())
    assert set(results) == models
    n = {res["n"] for res in results.values()}
    assert len(n) == 1  # every model is swept over the same inputs
    for res in results.values():
        assert res["clean_low"] <= res["clean_accuracy"] <= res["clean_high"]
        assert {row["noise"] for row in res["rows"]} == noises
        assert {row["severity"] for row in res["rows"]} == severities
        for row in res["rows"]:
            assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
            assert row["drop_low"] - 1e-12 <= row["drop"] <= row["drop_high"] + 1e-12
    md = (out / "table.md").read_text()
    assert all(f"{m} accuracy" in md for m in models) and "Wilson" in md
    assert "[95% CI]" in (out / "table.txt").read_text()
    assert (out / "accuracy_vs_severity.png").stat().st_size > 1000
    return results


def test_robustness_imdb_tiny(tmp_path):
    r = _run("robustness_imdb.py", IMDB, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    results = _check_outputs(tmp_path, {"bytes", "rendered", "tfidf"}, {"truncate", "confusable", "phonetic"}, {0.5})
    assert results["tfidf"]["train_size"] == results["bytes"]["train_size"] == 48
    assert results["rendered"]["adapter"] == "render" and results["rendered"]["rendering"] == "words"
    assert list((tmp_path / "examples").glob("rendered_*.png"))
    checks = json.loads((tmp_path / "goal.json").read_text())
    assert {(c["noise"], c["b"], c["factor"]) for c in checks} == {
        ("confusable", "bytes", 0.5), ("confusable", "tfidf", 1.0), ("phonetic", "bytes", 0.5), ("phonetic", "tfidf", 1.0)}
    for c in checks:
        assert c["low"] <= c["difference"] <= c["high"] and c["n"] == results["bytes"]["n"]
        assert c["drop_a"] == pytest.approx(next(r["drop"] for r in results["rendered"]["rows"]
                                                 if (r["noise"], r["severity"]) == (c["noise"], 0.5)))


def test_robustness_cifar10_tiny(tmp_path):
    r = _run("robustness_cifar10.py", CIFAR, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    results = _check_outputs(tmp_path, {"patches", "pixels"}, {"gaussian_noise", "contrast"}, {1.0, 3.0, 5.0})
    assert results["patches"]["adapter"] == "patches" and results["pixels"]["adapter"] == "pixels"
    assert list((tmp_path / "examples").glob("example_*.png"))

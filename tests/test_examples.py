"""Every example runs with `--tiny` and writes its outputs where asked.

The examples run in this process through their `main(argv)` (one torch import for all of them), on the test
fixtures or on small generated data; one also runs as a script to check its command line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from multiseq.checkpoint import load_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IMDB, CIFAR = FIXTURES / "aclImdb_mini.tar.gz", FIXTURES / "cifar10_mini.tar.gz"

# example -> (extra arguments, adapter kind of the trained model, sample files)
CASES = {
    "imdb_bytes": (["--data", str(IMDB)], "bytes", ["samples.txt"]),
    "imdb_rendered": (["--data", str(IMDB)], "render", ["samples.txt", "render_0_label*_strip.png"]),
    "cifar10_patches": (["--data", str(CIFAR)], "patches", ["samples.png"]),
    "cifar10_pixels": (["--data", str(CIFAR)], "pixels", ["samples.png"]),
    "pathfinder_pixels": (["--data", "{gen}", "--gen-workers", "1"], "pixels", ["samples.png"]),
    "listops": (["--data", "{gen}", "--gen-workers", "1"], "listops", ["samples.txt"]),
    "retrieval": (["--data", str(IMDB)], "bytes", ["samples.txt"]),
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return tmp_path_factory.mktemp("generated")


def test_one_example_file_per_modality():
    assert set(CASES) <= {p.stem for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_tiny(name, tmp_path, generated):
    extra, adapter_kind, sample_files = CASES[name]
    out = tmp_path / "out"
    argv = ["--tiny", "--out", str(out), "--threads", "1", "--quiet"] + [a.format(gen=generated) for a in extra]
    threads = torch.get_num_threads()
    try:
        summary = _load(name).main(argv)
    finally:
        torch.set_num_threads(threads)
    written = json.loads((out / "metrics.json").read_text())
    assert written == summary and written["tiny"] and 0.0 <= written["val_accuracy"] <= 1.0
    assert 0.0 <= written["majority_val_accuracy"] <= 1.0  # the floor printed beside every result
    for f in ("curves.png", "confusion.png", "metrics.jsonl", "config.json"):
        assert (out / f).is_file(), f
    for pattern in sample_files:
        assert list(out.glob(pattern)), pattern
    model = load_model(out / "model.safetensors")
    assert model.config.adapter.kind == adapter_kind
    assert model.is_dual == (name == "retrieval")
    if name == "imdb_rendered":
        strip = Image.open(next(out.glob("render_0_label*_strip.png")))
        square = Image.open(next(out.glob("render_0_label*_square.png")))
        assert strip.height == 16 and strip.width % 16 == 0 and square.size == (368, 368)
    # A second run into the same folder is refused unless asked to overwrite.
    with pytest.raises(SystemExit, match="--overwrite"):
        _load(name).main(argv)


def test_example_runs_as_a_script(tmp_path):
    out = tmp_path / "retrieval"
    cmd = [sys.executable, str(EXAMPLES / "retrieval.py"), "--tiny", "--out", str(out), "--threads", "1",
           "--quiet", "--data", str(IMDB)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "val accuracy" in r.stdout and (out / "metrics.json").is_file()


@pytest.mark.parametrize("name", ["imdb_bytes", "imdb_rendered"])
def test_text_example_prints_the_reference_and_can_self_pretrain(name, tmp_path, capsys):
    """The pretraining split of a budget: a pretraining run directory, then fine-tuning from its body (the rendered
    model keeps its render adapter, although the IMDb dataset's own is bytes), and the TF-IDF reference on the same
    validation reviews in metrics.json."""
    out = tmp_path / "spt"
    argv = ["--tiny", "--pretrain-fraction", "0.5", "--out", str(out), "--threads", "1", "--quiet", "--data", str(IMDB)]
    threads = torch.get_num_threads()
    try:
        summary = _load(name).main(argv)
    finally:
        torch.set_num_threads(threads)
    assert load_model(out / "model.safetensors").config.adapter.kind == CASES[name][1]
    assert (out / "pretrain" / "model.safetensors").is_file()
    assert json.loads((out / "pretrain" / "config.json").read_text())["stage"] == "pretrain"
    assert summary["pretrain_steps"] >= 1 and summary["budget_minutes"] > 0
    assert 0.0 <= summary["tfidf_val_accuracy"] <= 1.0 and 0.0 <= summary["majority_val_accuracy"] <= 1.0
    assert "TF-IDF + logistic regression" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="pretrain-fraction"):
        _load("imdb_bytes").main(["--tiny", "--pretrain-fraction", "1.5", "--out", str(tmp_path / "x")])

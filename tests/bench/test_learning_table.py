"""benchmarks/learning_table.py: run summaries -> the results table, its JSON lines and the README's block."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "learning_table.py"


def _module():
    spec = importlib.util.spec_from_file_location("learning_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, **summary) -> Path:
    folder.mkdir()
    base = {"example": "imdb_bytes", "model": "s4d_imdb_bytes", "max_length": 2048, "precision": "bf16",
            "budget_minutes": 30.0, "pretrain_fraction": 0.0, "steps": 100, "batch_size": 32, "train_seconds": 1800.0,
            "threads": 1, "load_average": [2.0, 2.0, 2.0], "val_accuracy": 0.8232, "val_size": 2500}
    (folder / "metrics.json").write_text(json.dumps({**base, **summary}))
    return folder


def test_rows_readme_block_and_records(tmp_path):
    text = _run(tmp_path / "text", tfidf_val_accuracy=0.912, majority_val_accuracy=0.4964)
    lops = _run(tmp_path / "lops", example="listops", model="s4d_listops_tokens", input="ListOps tokens, <= 2,000",
                pretrain_fraction=0.25, pretrain_steps=40, val_accuracy=0.381, val_size=2000,
                majority_val_accuracy=0.171)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- learning-table -->\nold\n<!-- /learning-table -->\nafter\n")
    notes = tmp_path / "notes.md"
    notes.write_text("Conditions: one thread per run.\n")
    out = tmp_path / "results" / "learning"
    _module().main([str(text), str(lops), "--out", str(out), "--readme", str(readme), "--notes", str(notes),
                    "--commands", "python examples/imdb_bytes.py", "python examples/listops.py"])
    md = out.with_suffix(".md").read_text()
    assert "| imdb_bytes | s4d_imdb_bytes | 2048 bytes | scratch | bf16 |" in md
    assert "SPT 25% + fine-tune" in md and "`python examples/listops.py`" in md and md.rstrip().endswith("per run.")
    records = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["row"]["samples seen"] for r in records] == [3200, 4480]  # pretraining steps count as samples seen
    block = readme.read_text()
    assert block.startswith("intro\n<!-- learning-table -->\n| task |") and block.endswith("<!-- /learning-table -->\nafter\n")
    assert "**0.823** (2,500) | TF-IDF 0.912 |" in block and "**0.381** (2,000) | majority 0.171 |" in block
    assert "old" not in block


def test_readme_without_markers_is_refused(tmp_path):
    run = _run(tmp_path / "run")
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="learning-table"):
        _module().main([str(run), "--out", str(tmp_path / "t"), "--readme", str(readme)])

"""The byte-level vs rendered-text robustness example runs end to end with --tiny on the IMDb fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMDB = Path(__file__).resolve().parents[1] / "fixtures" / "aclImdb_mini.tar.gz"


def test_robustness_imdb_tiny(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "robustness_imdb.py"), "--tiny", "--quiet", "--data", str(IMDB),
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"bytes", "rendered"}
    for res in results.values():
        assert {row["noise"] for row in res["rows"]} == {"truncate", "confusable", "phonetic"}
        assert all(0.0 <= row["accuracy"] <= 1.0 for row in res["rows"])
    assert (tmp_path / "accuracy_vs_severity.png").exists()
    assert list((tmp_path / "examples").glob("rendered_*.png"))

"""`multiseq data generate | stats | preview`."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from multiseq.cli import main
from multiseq.tasks import listops as lo

FIX = Path(__file__).parent.parent / "fixtures"


def test_generate_stats_and_preview_listops(tmp_path, capsys):
    root = str(tmp_path)
    assert main(["data", "generate", "listops", "--split", "val", "--size", "20", "--root", root, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "listops val: 20 samples" in out and "samples/s" in out
    tsv = tmp_path / "listops" / "seed0" / "basic_val_n20.tsv"
    src, lab, _ = lo.read_tsv(tsv)
    assert len(src) == 20 and all(lo.evaluate(s) == y for s, y in zip(src, lab))
    assert main(["data", "stats", "listops", "--split", "val", "--size", "20", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "n=20" in out and "labels: 0:" in out and "length (tokens)" in out
    assert main(["data", "preview", "listops", "--split", "val", "--size", "20", "--root", root,
                 "--out", str(tmp_path / "tree.txt")]) == 0
    text = (tmp_path / "tree.txt").read_text()
    assert text.startswith(f"label {lab[0]}\n") and text.splitlines()[1] in ("MIN", "MAX", "MED", "SM")


def test_preview_pathfinder_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "preview", "pathfinder", "--split", "test", "--size", "4", "--root", str(tmp_path),
                 "--workers", "1", "--out", str(out)]) == 0
    im = Image.open(out)
    assert im.size == (2 * (96 + 4), 2 * (96 + 14))  # 2 x 2 grid of 32 px images scaled 3x, label strip


def test_stats_on_real_data_and_errors(tmp_path, capsys):
    assert main(["data", "stats", "text", "--split", "val", "--root", str(FIX / "aclImdb_mini.tar.gz")]) == 0
    out = capsys.readouterr().out
    assert "n=30" in out and "items/s" in out and "length (bytes)" in out
    assert main(["data", "stats", "image", "--split", "val", "--root", str(FIX / "cifar10_mini.tar.gz")]) == 0
    assert "images (32, 32, 3)" in capsys.readouterr().out
    assert main(["data", "generate", "text"]) == 2
    assert "not generated" in capsys.readouterr().err
    assert main(["data", "stats", "text", "--option", "oops"]) == 2  # --option: alias of --task-option
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["data", "stats", "list"]) == 0
    assert "pathx" in capsys.readouterr().out

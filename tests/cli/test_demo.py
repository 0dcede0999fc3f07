"""`multiseq demo` (what `make demo` runs) starts with its default options and finishes at a tiny size."""

from multiseq.cli import main


def test_demo_runs_with_default_threads(tmp_path, capsys):
    # Only sizes are shrunk: --threads keeps its default (chosen from the machine's load), as in `make demo`.
    code = main(["demo", "--out", str(tmp_path / "demo"), "--train-size", "64", "--eval-size", "16", "--steps", "4",
                 "--batch-size", "8", "--width", "16", "--depth", "1", "--quiet"])
    assert code in (0, None)
    out = capsys.readouterr().out
    assert "thread(s)" in out and (tmp_path / "demo" / "model.safetensors").is_file()

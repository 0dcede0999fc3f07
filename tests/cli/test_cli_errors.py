"""User mistakes on the command line (issue #18 item 5): one line `multiseq: error: ...`, exit status 2; `--debug`
or MULTISEQ_DEBUG=1 shows the traceback; a bug keeps its traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
import torch

import multiseq
from multiseq.checkpoint import save_model
from multiseq.cli import main

TASK = ["--task", "multiseq.tasks.toy:count_task", "--task-option", "length=24", "--task-option", "n=16"]
TINY = ["--model-option", "width=16", "--model-option", "depth=1", "--model-option", 'adapter={"max_length": 24}']


def _train(out, *extra):
    return main(["train", *TASK, "--model", "local_bytes_tiny", *TINY, "--steps", "1", "--batch-size", "8",
                 "--val-split", "none", "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("errs") / "run"
    assert _train(out) == 0
    return out


def _one_line_error(capsys, status, *needles):
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert err.startswith("multiseq: error: ") and "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def _exit(argv):
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own exit for a bad command line
        return e.code


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["nosuchcommand"], "invalid choice"),
        (["eval", "x", "--no-such-option"], "unrecognized arguments"),
        (["eval", "x", "--task-option", "novalue"], "KEY=VALUE"),
        (["eval", "/no/such/run"], "not found"),
        (["predict", "/no/such/run", "text"], "not found"),
        (["data", "stats", "no_such_task"], "unknown task"),
        (["models", "--threads", "2"], "unrecognized arguments"),
    ],
)
def test_bad_command_lines_and_missing_files(argv, needle, capsys):
    _one_line_error(capsys, _exit(argv), needle)


def test_unknown_model_task_and_task_option(run_dir, tmp_path, capsys):
    _one_line_error(capsys, _exit(["train", *TASK, "--model", "no_such_model", "--out", str(tmp_path / "a")]),
                    "unknown", "no_such_model")
    _one_line_error(capsys, main(["eval", str(run_dir), "--task", "no_such_task"]), "unknown task")
    _one_line_error(capsys, main(["eval", str(run_dir), "--task", "text", "--task-option", "bogus=1"]),
                    "unknown option 'bogus'")


def test_existing_out_and_resume_with_changed_settings(run_dir, capsys):
    _one_line_error(capsys, _train(run_dir), "already holds a run")
    _one_line_error(capsys, _train(run_dir, "--resume", "--lr", "0.5"), "cannot resume")


def test_threads_and_device(run_dir, capsys):
    _one_line_error(capsys, main(["eval", str(run_dir), "--threads", "-1"]), "--threads")
    _one_line_error(capsys, main(["eval", str(run_dir), "--device", "potato"]), "not a device")
    if not torch.cuda.is_available():
        _one_line_error(capsys, main(["eval", str(run_dir), "--device", "cuda"]), "no CUDA")


def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    _one_line_error(capsys, _train(tmp_path / "file" / "run"), "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_out(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _one_line_error(capsys, _train(ro / "run"), "ermission")
    finally:
        ro.chmod(0o700)


def test_corrupt_checkpoint_and_corrupt_image(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    _one_line_error(capsys, main(["eval", str(bad), "--task", "text"]), "bad.safetensors")
    model = multiseq.create_model("attention_patches_tiny", num_classes=2, width=16, depth=1)
    path = save_model(model, tmp_path / "img.safetensors")
    png = tmp_path / "broken.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    _one_line_error(capsys, main(["predict", str(path), str(png)]), "broken.png", "not a readable image")
    _one_line_error(capsys, main(["predict", str(path)]), "give inputs")


def test_full_disk_is_a_user_error_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    import multiseq.cli.info as info

    def full(_args):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/model.safetensors")

    monkeypatch.setattr(info, "run_info", full, raising=False)
    monkeypatch.setattr(info, "run", full, raising=False)
    _one_line_error(capsys, main(["info"]), "No space left on device", "/runs/x")

    def bug(_args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(info, "run_info", bug, raising=False)
    monkeypatch.setattr(info, "run", bug, raising=False)
    with pytest.raises(ZeroDivisionError):
        main(["info"])


def test_debug_shows_the_traceback_and_version():
    def cli(*args, env=None):
        return subprocess.run([sys.executable, "-m", "multiseq.cli", *args], capture_output=True, text=True,
                              timeout=300, env={**os.environ, **(env or {})})

    r = cli("eval", "/no/such/run")
    assert r.returncode == 2 and r.stderr.strip() == "multiseq: error: eval: checkpoint not found: /no/such/run"
    r = cli("eval", "/no/such/run", "--debug")
    assert r.returncode == 1 and "Traceback" in r.stderr and "CheckpointError" in r.stderr
    r = cli("eval", "/no/such/run", env={"MULTISEQ_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback" in r.stderr
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"multiseq {multiseq.__version__}"

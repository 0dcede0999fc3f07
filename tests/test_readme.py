"""Every code block in the README runs.

Python blocks run in a fresh interpreter. Shell blocks run line by line, except `make` targets, which would
recurse into this very suite: those are checked with `make -n` (the target exists and its recipe expands).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)
BIN = Path(sys.executable).parent


def test_readme_opens_with_the_two_commands():
    lang, first = BLOCKS[0]
    assert [line.split("#")[0].strip() for line in first.strip().splitlines()] == ["make demo", "make test"]


@pytest.mark.parametrize("index", [i for i, (lang, _) in enumerate(BLOCKS) if lang == "python"])
def test_python_block(index, tmp_path):
    code = BLOCKS[index][1]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, f"README python block {index} failed:\n{code}\n{r.stderr[-3000:]}"


@pytest.mark.parametrize("index", [i for i, (lang, _) in enumerate(BLOCKS) if lang in ("sh", "bash")])
def test_shell_block(index, tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for line in BLOCKS[index][1].strip().splitlines():
        cmd = line.split("  #")[0].strip()
        if not cmd or cmd.startswith("#"):
            continue
        if cmd.startswith("make "):
            target = shlex.split(cmd)[1]
            r = subprocess.run(["make", "-n", target], capture_output=True, text=True, cwd=ROOT, timeout=120)
        else:
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert r.returncode == 0, f"README command failed: {cmd}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"

"""The `multiseq` command line."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "multiseq.cli", *args], capture_output=True, text=True, timeout=300)


def test_info_explains_fused_paths():
    r = _run("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["torch_threads"] >= 1 and info["versions"]["torch"]
    paths = {p["op"]: p for p in info["fused_paths"]}
    assert "local_attention" in paths
    for p in paths.values():
        assert p["available"] or p["reason"]


def test_info_text_and_kernels_off():
    r = subprocess.run(
        [sys.executable, "-m", "multiseq.cli", "info"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "MULTISEQ_KERNELS": "off"},
        timeout=300,
    )
    assert r.returncode == 0 and "MULTISEQ_KERNELS=off" in r.stdout and "not used" in r.stdout


def test_models_listing():
    r = _run("models", "local_*")
    assert r.returncode == 0 and "local_bytes_small" in r.stdout.split()

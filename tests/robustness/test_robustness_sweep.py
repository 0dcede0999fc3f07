"""Robustness sweeps end to end on tiny models: Python API and `multiseq robustness` on trained run directories."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from multiseq.config import AdapterConfig
from multiseq.robustness.report import save_examples
from multiseq.robustness.sweep import NoisyDataset, format_table, sweep
from multiseq.train import fit, model_for_data


class Texts:
    """Tiny sentiment-like text task: label 1 when 'good' occurs."""

    task, num_classes, pair = "tiny_text", 2, False
    adapter = AdapterConfig("bytes", max_length=64)

    def __init__(self, split: str = "val", size: int = 24, **_: object) -> None:
        rng = np.random.default_rng(0 if split == "train" else 1)
        words = ["movie", "plot", "actor", "scene", "story", "music"]
        self.items = []
        for i in range(size):
            label = i % 2
            body = " ".join(rng.choice(words, 4))
            self.items.append((f"the {body} was {'good' if label else 'bad'}", label))
        self.labels = [y for _, y in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


class Images:
    task, num_classes, pair = "tiny_image", 2, False
    adapter = AdapterConfig("pixels", max_length=64, options={"image_size": [8, 8]})

    def __init__(self, split: str = "val", size: int = 16, **_: object) -> None:
        rng = np.random.default_rng(2)
        self.items = [((rng.random((8, 8)) * (100 + 150 * (i % 2))).astype(np.uint8), i % 2) for i in range(size)]
        self.labels = [y for _, y in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def text_task(split: str = "val", **kw: object) -> Texts:
    return Texts(split, **kw)


def image_task(split: str = "val", **kw: object) -> Images:
    return Images(split, **kw)


def _tiny_fit(data, out=None, preset="local_bytes_tiny"):
    model = model_for_data(preset, data, width=16, depth=1)
    return fit(model, data, out=out, steps=3, batch_size=8, progress=False).model


def test_noisy_dataset_is_seeded_and_keeps_labels():
    data = Texts()
    a, b = NoisyDataset(data, "inner-swap", 0.5, seed=1), NoisyDataset(data, "inner-swap", 0.5, seed=1)
    assert [a[i] for i in range(5)] == [b[i] for i in range(5)]
    assert [a[i][1] for i in range(5)] == data.labels[:5]
    assert any(a[i][0] != data[i][0] for i in range(5))
    assert NoisyDataset(data, "inner-swap", 0.0)[0] == data[0]


def test_sweep_text_and_image(tmp_path):
    for data, preset, noises, sev in (
        (Texts(), "local_bytes_tiny", ["truncate", "confusable"], [0.5]),
        (Images(), "local_pixels_tiny", ["gaussian_noise", "occlusion"], [1, 5]),
    ):
        model = _tiny_fit(data, preset=preset)
        res = sweep(model, data, noises, sev, seed=0, batch_size=8)
        assert res["modality"] in ("text", "image") and len(res["rows"]) == 2 * len(sev)
        for r in res["rows"]:
            assert 0 <= r["accuracy"] <= 1 and r["drop"] == pytest.approx(res["clean_accuracy"] - r["accuracy"])
        assert "clean accuracy" in format_table(res)
        paths = save_examples(data, tmp_path / res["modality"], noises, sev, count=1)
        assert paths and all(p.exists() for p in paths)


def test_robustness_cli_side_by_side(tmp_path):
    runs = []
    for name in ("bytes_a", "bytes_b"):
        _tiny_fit(Texts("train"), out=tmp_path / name)
        runs.append(tmp_path / name)
    out = tmp_path / "rob"
    cmd = [
        sys.executable, "-m", "multiseq.cli", "robustness", "--checkpoint", str(runs[0]), "--compare", str(runs[1]),
        "--task", "tests.robustness.test_robustness_sweep:text_task", "--noise", "truncate,disemvowel", "--severity", "0.2,0.8",
        "--out", str(out), "--quiet", "--examples", "1",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"bytes_a", "bytes_b"}
    assert all(len(v["rows"]) == 4 for v in results.values())
    assert (out / "accuracy_vs_severity.png").stat().st_size > 1000
    assert (out / "examples" / "examples.json").exists()


def test_cli_rejects_wrong_noise_for_modality(tmp_path):
    _tiny_fit(Texts("train"), out=tmp_path / "run")
    r = subprocess.run(
        [sys.executable, "-m", "multiseq.cli", "robustness", "--checkpoint", str(tmp_path / "run"), "--task",
         "tests.robustness.test_robustness_sweep:text_task", "--noise", "gaussian_noise", "--out", str(tmp_path / "o"), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode != 0 and "not a text noise" in r.stderr


def test_robustness_cli_on_an_image_checkpoint(tmp_path):
    _tiny_fit(Images("train"), out=tmp_path / "pixels", preset="local_pixels_tiny")
    out = tmp_path / "rob"
    r = subprocess.run(
        [sys.executable, "-m", "multiseq.cli", "robustness", "--checkpoint", str(tmp_path / "pixels"), "--task",
         "tests.robustness.test_robustness_sweep:image_task", "--noise", "gaussian_noise,occlusion", "--severity", "1,5",
         "--out", str(out), "--quiet", "--examples", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())["pixels"]
    assert res["modality"] == "image" and len(res["rows"]) == 4
    assert (out / "examples" / "example_0.png").exists()

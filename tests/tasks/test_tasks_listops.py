"""ListOps: the generator's statistics against the LRA spec, string semantics, TSV files, the adapter, get()."""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import pytest
import torch

import multiseq
import multiseq.tasks as tasks
from multiseq.adapters import build_adapter
from multiseq.config import AdapterConfig
from multiseq.errors import ConfigError, InputError, UnknownNameError
from multiseq.tasks import listops as lo
from multiseq.tasks._common import DataError


@pytest.fixture(scope="module")
def sample():
    stats: dict = {}
    rows = lo.generate(3000, seed=11, workers=2, stats=stats)
    return rows, stats


def test_statistics_match_lra_spec(sample):
    rows, stats = sample
    assert len(rows) == 3000 and len({s for s, _ in rows}) == 3000  # deduplicated
    # acceptance about 8.2 % (binomial sd on ~36k draws is 0.15 %)
    assert 0.075 < stats["accepted"] / stats["attempts"] < 0.09
    lengths = np.array([len(lo.tokens(s)) for s, _ in rows])
    assert lengths.min() > 500 and lengths.max() < 2000  # strictly between
    # spec: mean about 1,064 (a literal simulation of the process gives about 1,040; sd of the mean here ~7)
    assert 1000 < lengths.mean() < 1100
    assert 900 < np.median(lengths) < 1050
    freq = np.bincount([lab for _, lab in rows], minlength=10) / len(rows)
    assert 0.14 < freq[0] < 0.20 and 0.14 < freq[9] < 0.20
    assert all(0.055 < f < 0.11 for f in freq[1:9])
    roots = collections.Counter(lo.tokens(s)[0] for s, _ in rows)
    assert set(roots) == set(lo.OPERATORS) and all(0.2 < c / len(rows) < 0.3 for c in roots.values())
    depths = collections.Counter(lo.depth(s) for s, _ in rows)
    assert max(depths) == 9 and depths[9] / len(rows) > 0.98  # leaves at depth 10 at most


def test_labels_agree_with_an_independent_evaluator(sample):
    rows, _ = sample
    assert all(lo.evaluate(s) == lab for s, lab in rows[:500])


def test_string_form_and_semantics():
    assert lo.evaluate("( ( ( [MAX 4 ) 9 ) ] )") == 9
    assert lo.tokens("( ( ( [MAX 4 ) 9 ) ] )") == ["[MAX", "4", "9", "X"]
    assert lo.evaluate("( ( ( [MED 3 ) 4 ) ] )") == 3  # even count: mean of the middle two, truncated
    assert lo.evaluate("( ( ( ( [MED 1 ) 8 ) 9 ) ] )") == 8
    assert lo.evaluate("( ( ( ( [SM 9 ) 8 ) 7 ) ] )") == 4
    assert lo.evaluate("( ( ( [MIN 4 ) ( ( ( [MAX 1 ) 2 ) ] ) ) ] )") == 2
    for bad in ("( ( ( [MAX 4 ) 9 )", "[FOO 1 ]", "( ( [MAX ) ] )"):
        with pytest.raises(ValueError):
            lo.evaluate(bad)
    # the generator's own string builder gives LRA's pair form
    rows = lo.generate(5, seed=2, workers=1)
    for s, _ in rows:
        assert s.startswith("( ") and s.endswith(" ] )") and s.count("(") == s.count(")")


def test_generation_is_seeded_prefix_stable_and_independent_of_workers():
    a = lo.generate(40, seed=5, workers=1)
    b = lo.generate(80, seed=5, workers=2)
    assert a == b[:40]
    assert lo.generate(40, seed=6, workers=1) != a
    val = {s for s, _ in lo.generate(40, seed=5, split="val", workers=1)}
    assert not val & {s for s, _ in b}  # splits are separate streams


def test_tsv_round_trip_and_lra_header(tmp_path):
    rows = lo.generate(30, seed=1, workers=1)
    p = tmp_path / "basic_val.tsv"
    lo.write_tsv(p, rows)
    assert p.read_text().splitlines()[0] == "Source\tTarget"
    src, lab, skipped = lo.read_tsv(p)
    assert list(zip(src, lab)) == rows and skipped == []


@pytest.mark.parametrize(
    "body, needle",
    [
        ("Source\tTarget\n( ( [MAX 1 ) ] )\n", "2 tab-separated"),
        ("Source\tTarget\n( ( ( [MAX 1 ) 2 ) ] )\t12\n", "outside 0..9"),
        ("Source\tTarget\n( ( ( [MAX 1 ) 2 ) ] )\tnine\n", "not an integer"),
    ],
)
def test_bad_rows_name_file_and_line_or_are_skipped_and_counted(tmp_path, body, needle):
    p = tmp_path / "bad.tsv"
    p.write_text("Source\tTarget\n( ( ( [MAX 1 ) 2 ) ] )\t2\n" + body.split("\n", 1)[1])
    with pytest.raises(DataError, match=rf"bad.tsv:3: .*{needle}"):
        lo.read_tsv(p)
    with pytest.warns(UserWarning, match="skipped 1 bad item"):
        src, lab, skipped = lo.read_tsv(p, on_error="skip")
    assert lab == [2] and len(skipped) == 1


def test_empty_missing_and_headerless_files(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        lo.read_tsv(tmp_path / "empty.tsv")
    (tmp_path / "nohead.tsv").write_text("( ( ( [MAX 1 ) 2 ) ] )\t2\n")
    with pytest.raises(DataError, match="header"):
        lo.read_tsv(tmp_path / "nohead.tsv")
    with pytest.raises(DataError, match="not found"):
        lo.read_tsv(tmp_path / "nope.tsv")
    (tmp_path / "latin.tsv").write_bytes(b"Source\tTarget\n\xff\t1\n")
    with pytest.raises(DataError, match="not UTF-8"):
        lo.read_tsv(tmp_path / "latin.tsv")


def test_get_generates_once_into_the_cache_and_has_the_contract(tmp_path):
    ds = tasks.get("listops", split="val", root=tmp_path, size=25, seed=3, workers=1)
    assert (ds.task, ds.num_classes, ds.pair, len(ds)) == ("listops", 10, False, 25)
    assert ds.adapter == AdapterConfig("listops", max_length=2000)
    assert ds.label_names == [str(k) for k in range(10)]
    src, label = ds[3]
    assert isinstance(src, str) and isinstance(label, int) and label == ds.labels[3] == lo.evaluate(src)
    mtime = os.stat(ds.path).st_mtime_ns
    small = tasks.get("listops", split="val", root=tmp_path, size=10, seed=3)  # prefix of the cached file
    assert small.path == ds.path and os.stat(ds.path).st_mtime_ns == mtime
    assert [small[i] for i in range(10)] == [ds[i] for i in range(10)]
    with pytest.raises(IndexError):
        ds[25]
    # a user's LRA file is read as is
    lo.write_tsv(tmp_path / "listops" / "basic_test.tsv", [("( ( ( [SM 5 ) 6 ) ] )", 1)])
    assert tasks.get("listops", split="test", root=tmp_path)[0] == ("( ( ( [SM 5 ) 6 ) ] )", 1)


def test_get_rejects_unknown_names_options_and_splits(tmp_path):
    with pytest.raises(UnknownNameError, match="listops"):
        tasks.get("listop")
    with pytest.raises(ConfigError, match="valid options: .*size"):
        tasks.get("listops", root=tmp_path, sizes=3)
    with pytest.raises(ConfigError, match="split"):
        tasks.get("listops", split="dev", root=tmp_path, size=3)
    with pytest.raises(ConfigError, match="size"):
        tasks.get("listops", root=tmp_path, size=0)
    assert "listops" in tasks.list_tasks()


def test_adapter_tokenises_as_lra():
    a = build_adapter(AdapterConfig("listops", max_length=8))
    x, m = a(["( ( ( [MAX 4 ) 9 ) ] )", "( ( [SM 0 ) ] )"])
    v = a.vocab
    assert x[0].tolist() == [v["[MAX"], v["4"], v["9"], v["X"]] and x[1].tolist() == [v["[SM"], v["0"], v["X"], 0]
    assert m.tolist() == [[True] * 4, [True, True, True, False]]
    assert a.embed_spec().kind == "token" and a.embed_spec().vocab_size == 18
    assert sorted(v.values()) == list(range(1, 16))
    assert a.encode("( ( [FOO 1 ) ] )")[0] == a.UNK
    with pytest.raises(InputError, match="FOO"):
        build_adapter(AdapterConfig("listops", 8, {"unknown": "error"})).encode("( ( [FOO 1 ) ] )")
    assert a.encode(" ".join(["1"] * 20)) == [v["1"]] * 8  # truncation keeps the first tokens
    e = build_adapter(AdapterConfig("listops", 4, {"add_eos": True, "pad_to": "max_length"}))
    x, m = e("( ( [SM 0 ) ] )")
    assert x.tolist() == [[v["[SM"], v["0"], v["X"], e.EOS]] and m.all()
    with pytest.raises(InputError, match="tokens"):
        build_adapter(AdapterConfig("listops", 2, {"truncation": "error"})).encode("( ( [SM 0 ) ] )")
    with pytest.raises(ConfigError):
        build_adapter(AdapterConfig("listops", 8, {"pad_to": "nope"}))


def test_a_model_consumes_the_dataset(tmp_path):
    ds = tasks.get("listops", split="val", root=tmp_path, size=4, seed=0, workers=1)
    # the dataset's adapter config, shortened so the test stays fast (inputs are truncated to 64 tokens)
    adapter = dataclasses.replace(ds.adapter, max_length=64)
    model = multiseq.create_model("local_bytes_tiny", num_classes=ds.num_classes, adapter=adapter)
    x, mask = model.encode([ds[i][0] for i in range(len(ds))])
    out = model(x, mask)
    assert x.shape == (4, 64) and out.shape == (4, 10) and torch.isfinite(out).all()


def test_first_build_says_so_and_a_stale_lock_blocks_nothing(tmp_path, capsys, monkeypatch):
    from multiseq.tasks import listops

    monkeypatch.setattr(listops, "TREES_PER_SECOND", 1)  # make a small build look long enough to announce
    folder = tmp_path / "listops" / "seed3"
    folder.mkdir(parents=True)
    stale = folder / "basic_val_n20.tsv.lock"
    stale.write_text("")  # left by a killed build: an flock is released with its process, the file blocks nothing
    path = listops.ensure_split("val", root=tmp_path, size=20, seed=3, workers=1)
    assert path.is_file() and len(path.read_text().splitlines()) >= 20
    err = capsys.readouterr().err
    assert "generating ListOps val: 20 trees" in err and "about" in err and "cached" in err
    listops.ensure_split("val", root=tmp_path, size=20, seed=3, workers=1)
    assert capsys.readouterr().err == ""  # cached: nothing to say

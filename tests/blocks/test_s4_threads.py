"""The S4 family's CPU FFT thread scope: read from MULTISEQ_FFT_THREADS once, at construction; by default the
process-wide thread count is never touched."""

from __future__ import annotations

import pytest
import torch

from multiseq.blocks import build_block
from multiseq.blocks.s4_kernels import FFT_THREADS_ENV


def _calls(monkeypatch):
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    return calls


def test_default_never_touches_the_thread_count(monkeypatch):
    monkeypatch.delenv(FFT_THREADS_ENV, raising=False)
    blk = build_block("s4d", 16, d_state=8)
    calls = _calls(monkeypatch)
    x = torch.randn(2, 33, 16, requires_grad=True)
    blk(x).square().sum().backward()
    assert calls == [] and blk.fft_threads == 0


def test_scope_read_at_construction_and_restored(monkeypatch):
    have = torch.get_num_threads()
    monkeypatch.setenv(FFT_THREADS_ENV, "1")
    blk = build_block("s4d", 16, d_state=8)
    monkeypatch.setenv(FFT_THREADS_ENV, "0")  # later changes do not reach a built block
    calls = _calls(monkeypatch)
    torch.set_num_threads(2)
    try:
        calls.clear()
        x = torch.randn(2, 33, 16, requires_grad=True)
        ref = build_block("s4d", 16, d_state=8)
        ref.load_state_dict(blk.state_dict())
        y = blk(x)
        y.square().sum().backward()
        assert torch.get_num_threads() == 2 and calls and calls[::2] == [1] * (len(calls) // 2)
        torch.testing.assert_close(ref(x), y)  # the scope changes threads, never numbers
    finally:
        torch.set_num_threads(have)


def test_bad_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(FFT_THREADS_ENV, "two")
    with pytest.raises(ValueError, match=FFT_THREADS_ENV):
        build_block("s4d", 16, d_state=8)

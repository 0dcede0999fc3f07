"""Fused Triton EMA kernel generation vs its reference, forward and backward, under the Triton interpreter.

`TRITON_INTERPRET=1` must be set before the `@triton.jit` module is imported, so the check runs in a subprocess
at small sizes (lengths that break the 128-lag blocks, N not a power of two). Budget (flash-attention's rule): the
error against a float64 reference is at most 2x the error of the plain float32 reference path (plus 1e-6).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import torch
    from multiseq.blocks.mega_ops import ema_kernel_ref
    from multiseq.kernels.triton_ema import triton_ema_kernel

    torch.manual_seed(0)
    for L in (1, 3, 129, 200):
        w = torch.randn(3, 5)
        lq = -torch.rand(3, 5) * 0.5
        g = torch.randn(3, L)
        outs = {}
        for name, fn, dt in (("fused", triton_ema_kernel, torch.float32), ("ref32", ema_kernel_ref, torch.float32),
                             ("ref64", ema_kernel_ref, torch.float64)):
            a, b = w.to(dt).requires_grad_(), lq.to(dt).requires_grad_()
            k = fn(a, b, L)
            outs[name] = (k, *torch.autograd.grad(k, (a, b), g.to(dt)))
        for i, what in enumerate(("k", "dw", "dlogq")):
            err = (outs["fused"][i].double() - outs["ref64"][i]).abs().max().item()
            base = (outs["ref32"][i].double() - outs["ref64"][i]).abs().max().item()
            scale = outs["ref64"][i].abs().max().item()
            assert err <= 2 * base + 1e-6 * max(scale, 1.0), (L, what, err, base)
    print("OK")
    """
)


def test_triton_ema_kernel_matches_reference_in_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]

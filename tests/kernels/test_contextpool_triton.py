"""The fused Triton ContextPool kernels against the float64 reference, forward and backward.

On this CPU machine Triton runs only under `TRITON_INTERPRET=1`, which must be set before the kernel module is
imported, so the comparison runs in a fresh interpreter at small sizes. Lengths straddle the 32-token tiles.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from multiseq.kernels import why_not

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import torch
    from multiseq.kernels.triton_contextpool import triton_context_pool
    from multiseq.blocks.contextpool import context_pool_ref, context_pool_log

    torch.manual_seed(0)
    cases = [  # L, D, radius, cols, causal
        (1, 3, 0, 1, False), (3, 5, 1, 1, False), (31, 4, 5, 1, False), (33, 4, 5, 1, True),
        (65, 3, 40, 1, False), (66, 20, 2, 6, False), (36, 5, 1, 6, False), (40, 3, 9, 1, True),
    ]
    for L, D, radius, cols, causal in cases:
        B = 2
        x = torch.randn(B, L, D)
        logw = torch.randn(B, L)
        sigma = torch.rand(B, L) * 4 + 0.05
        mask = torch.ones(B, L, dtype=torch.bool)
        if L > 3:
            mask[1, L - max(cols, L // 3):] = False
        gy = torch.randn(B, L, D)
        leaves = [t.clone().requires_grad_() for t in (x, logw, sigma)]
        y = triton_context_pool(*leaves, radius, mask, cols=cols, causal=causal)
        grads = torch.autograd.grad(y, leaves, gy)
        exact = [t.double().requires_grad_() for t in (x, logw, sigma)]
        y64 = context_pool_ref(exact[0], exact[1].exp(), exact[2], radius, mask, cols=cols, causal=causal)
        grads64 = torch.autograd.grad(y64, exact, gy.double())
        # The plain PyTorch path in float32 sets the error budget (x2, as flash-attention's rule).
        plain = [t.clone().requires_grad_() for t in (x, logw, sigma)]
        yp = context_pool_log(*plain, radius, mask, cols=cols, causal=causal)
        gradsp = torch.autograd.grad(yp, plain, gy)
        for name, a, b, c in [("y", y, y64, yp)] + list(zip(("dx", "dlogw", "dsigma"), grads, grads64, gradsp)):
            err = (a.double() - b).abs().max().item()
            budget = 2 * (c.double() - b).abs().max().item() + 1e-6 * (1 + b.abs().max().item())
            assert err <= budget, (L, D, radius, cols, causal, name, err, budget)
        assert (y[~mask] == 0).all()
    print("ok", len(cases))
    """
)


def test_triton_kernels_match_reference_under_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "MULTISEQ_KERNELS": "auto"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert r.stdout.strip().endswith("ok 8")


def test_dispatcher_uses_the_kernel_only_on_cuda():
    import multiseq.blocks.contextpool  # noqa: F401  (registers the fused path)

    reason = why_not("context_pool", torch.device("cpu"))
    assert reason is not None and ("CUDA" in reason or "MULTISEQ_KERNELS" in reason)

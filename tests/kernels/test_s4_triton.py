"""The Triton log-Vandermonde and Cauchy kernels against their references, forward and backward, under the Triton interpreter
(CPU), in a subprocess because TRITON_INTERPRET must be set before triton is imported."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import torch
    from multiseq.kernels.triton_s4 import triton_vandermonde_kernel
    from multiseq.blocks.s4_kernels import vandermonde_kernel_ref

    torch.manual_seed(0)
    for H, N, L in [(2, 3, 1), (3, 5, 3), (2, 17, 127), (1, 4, 129)]:
        a = torch.complex(-torch.rand(H, N, dtype=torch.float64) * 0.05, torch.randn(H, N, dtype=torch.float64))
        C = torch.randn(H, N, dtype=torch.complex128)
        a.requires_grad_(), C.requires_grad_()
        g = torch.randn(H, L, dtype=torch.float64)
        truth = vandermonde_kernel_ref(a, C, L)
        ta, tc = torch.autograd.grad((truth * g).sum(), (a, C))
        a32, C32 = a.detach().to(torch.complex64).requires_grad_(), C.detach().to(torch.complex64).requires_grad_()
        fused = triton_vandermonde_kernel(a32, C32, L)
        fa, fc = torch.autograd.grad((fused * g.float()).sum(), (a32, C32))
        plain = vandermonde_kernel_ref(a32, C32, L)
        pa, pc = torch.autograd.grad((plain * g.float()).sum(), (a32, C32))
        # Error against fp64 truth within 2x the plain fp32 reference's error (plus an fp32 rounding floor).
        for f, p, t in [(fused, plain, truth), (fa, pa, ta), (fc, pc, tc)]:
            scale = float(t.abs().max()) + 1.0
            err_f = float((f.to(t.dtype) - t).abs().max())
            err_p = float((p.to(t.dtype) - t).abs().max())
            assert err_f <= 2 * err_p + 1e-5 * scale, (H, N, L, err_f, err_p)

    from multiseq.kernels.triton_s4 import triton_cauchy
    from multiseq.blocks.s4_kernels import _cauchy_chunk

    for H, N, K in [(2, 3, 5), (1, 20, 70)]:  # K = 70 > one block; alpha = 0 at k = 0 meets padded modes
        v = torch.randn(4, H, N, dtype=torch.complex128, requires_grad=True)
        x = (torch.randn(H, N, dtype=torch.complex128) * 0.1 - 0.05).requires_grad_()
        z = torch.polar(torch.ones(K, dtype=torch.float64), -torch.pi * torch.arange(K, dtype=torch.float64) / K)
        truth = _cauchy_chunk(v, x, 1 - z, 1 + z)
        g = torch.randn_like(truth)
        tv, tx = torch.autograd.grad((truth * g.conj()).real.sum(), (v, x))
        v32, x32 = (t.detach().to(torch.complex64).requires_grad_() for t in (v, x))
        z32, g32 = z.to(torch.complex64), g.to(torch.complex64)
        outs = []
        for fn in (triton_cauchy, _cauchy_chunk):
            r = fn(v32, x32, 1 - z32, 1 + z32)
            outs.append((r, *torch.autograd.grad((r * g32.conj()).real.sum(), (v32, x32))))
        for f, p, t in zip(outs[0], outs[1], (truth, tv, tx)):
            scale = float(t.abs().max()) + 1.0
            err_f, err_p = float((f.to(t.dtype) - t).abs().max()), float((p.to(t.dtype) - t).abs().max())
            assert err_f <= 2 * err_p + 1e-5 * scale, (H, N, K, err_f, err_p)
    print("ok")
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_vandermonde_matches_reference_under_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]

"""FLOP and byte counts per block, for the benchmark's floor: `max(FLOPs / matmul rate, bytes / copy rate)`.

Where a count comes from, in order (the JSON says which in `cost_source`):

1. `block`: the block class defines `flops(L, D)` and/or `bytes(L, D)` (forward, batch 1, fp32). A block that
   knows its own algorithm should say so; these methods are optional.
2. `formula:<family>`: every Linear / Conv layer the module holds (exact: 2 x positions x in x out), plus the
   family's own work below (scores, SSM kernels, FFTs, pooling), reading hyper-parameters from the block's
   attributes (window, heads, state size...) and falling back to the documented defaults.
3. `counted`: anything else gets the FLOPs that torch's FlopCounterMode counted while it ran (matmuls,
   convolutions, attention; not FFTs or element-wise work), and bytes as every (B, L, D) activation written
   once and read once.

The formulas count what the algorithm needs, not what one implementation happens to compute (the blocked sliding
window computes some masked scores twice; that shows up as distance from the floor, which is the point).
Bytes count each named intermediate written once and read once, in fp32. Forward+backward is taken as 3x the
forward (backward ~ 2x forward for matmul-dominated layers), for FLOPs and bytes alike.
"""

from __future__ import annotations

import math
from typing import Any

F32 = 4
BWD_FACTOR = 3.0


def _attr(module: Any, names: tuple[str, ...], default: float) -> tuple[float, bool]:
    # First numeric attribute present among `names` on the module, and whether it was found.
    for n in names:
        v = getattr(module, n, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v), True
    return float(default), False


def _fft_flops(n: int) -> float:
    # A real FFT of length n: about 2.5 n log2 n flops (half of the complex 5 n log2 n).
    return 2.5 * n * math.log2(max(n, 2))


def dense_costs(module: Any, L: int) -> tuple[float, float]:
    """FLOPs and bytes of every Linear / Conv1d / Conv2d in `module` applied at L positions (forward, batch 1).

    Bytes: the layer's input read, its output written, its weight read, once each.
    """
    from torch import nn

    flops = nbytes = 0.0
    for m in module.modules():
        if isinstance(m, nn.Linear):
            i, o, k = m.in_features, m.out_features, 1
        elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
            i, o = m.in_channels, m.out_channels
            k = math.prod(m.kernel_size) / m.groups
        else:
            continue
        flops += 2 * L * i * o * k
        nbytes += F32 * (L * (i + o) + i * o * k)
    return flops, nbytes


def _extra(family: str, m: Any, L: int, D: int, p: dict[str, Any]) -> tuple[float, float]:
    """FLOPs and bytes a family spends outside its dense layers (scores, kernels, FFTs, pooling)."""

    def get(key: str, obj: Any, names: tuple[str, ...], default: float) -> float:
        v, found = _attr(obj, names, default)
        p[key] = v if found else f"{v} (assumed)"
        return v

    io = 4 * F32 * L * D  # q, k, v read and the attended values written by a fused attention
    if family in ("attention", "attention_explicit"):
        extra_bytes = io
        if family == "attention_explicit":
            H = get("heads", m, ("heads",), 8)
            extra_bytes += 4 * F32 * H * L * L  # scores and probabilities, each written and read
        return 4 * L * L * D, extra_bytes
    if family == "local":
        w = get("window", m, ("window",), 256)
        return 4 * L * min(w + 1, L) * D, io
    if family == "ls":
        w = get("window", m, ("window",), 128)
        r = get("rank", m, ("rank",), 32)
        H = get("heads", m, ("heads",), 8)
        return 4 * L * (r + 2 * w) * D + 4 * L * r * D, io + 2 * F32 * L * H * r
    if family in ("s4", "s4d", "dss", "gss"):
        kernel = getattr(m, "kernel", None)
        Dp = getattr(m, "D", None)
        H = float(Dp.numel()) if Dp is not None and hasattr(Dp, "numel") else float(D)
        p["ssm_channels_H"] = H
        ch = get("kernel_channels", kernel, ("channels",), 2)
        n2 = get("modes", kernel, ("N2",), 32)
        for pname in ("L_re", "A_re"):  # (H, N/2) parameters give the mode count when N2 is not an attribute
            t = getattr(kernel, pname, None)
            if not isinstance(p["modes"], float) and t is not None and getattr(t, "dim", lambda: 0)() == 2:
                n2 = float(t.shape[-1])
                p["modes"] = n2
        n = 2 * L
        # Kernel generation (ch x H x N/2 complex terms per lag, ~8 flops each), then rfft(u), rfft(k), product,
        # irfft; buffers: kernel (ch H L), and four spectra of n real values per channel.
        flops = 8 * ch * H * n2 * L + H * (3 * _fft_flops(n) + 6 * (n // 2 + 1))
        return flops, 2 * F32 * H * (ch * L + 4 * n)
    if family in ("mega", "mega_chunk"):
        z = get("zdim", m, ("zdim",), 64)
        v = get("hdim", m, ("hdim",), 2 * D)
        c = get("chunk", m, ("chunk",), 128 if family == "mega_chunk" else 0)
        ema = getattr(m, "ema", None)
        nd = get("ndim", ema, ("ndim", "n_dim"), 16)
        keys = L if c <= 0 else min(c, L)
        n = 2 * L
        flops = 2 * 2 * D * nd * L + D * (3 * _fft_flops(n) + 6 * (n // 2 + 1))  # EMA kernel and FFT conv
        flops += 2 * L * keys * z + 2 * L * keys * v  # single-head attention over `keys` keys
        nbytes = 2 * F32 * D * (2 * L + 4 * n) + 4 * F32 * L * keys  # EMA buffers; scores and probabilities
        return flops, nbytes
    if family == "contextpool":
        r = get("radius", m, ("radius",), 8)
        width = 2 * r + 1
        flops = 4 * L * width * D  # weighted sum of features and of weights over the band
        nbytes = 2 * F32 * 2 * L * D
        inner = getattr(m, "inner", None)
        ifam = _family(getattr(type(inner), "block_name", "")) if inner is not None else None
        if ifam is not None:
            p2: dict[str, Any] = {}
            f2, b2 = _extra(ifam, inner, L, D, p2)
            flops, nbytes = flops + f2, nbytes + b2
            p.update({f"inner.{k}": v for k, v in p2.items()})
        return flops, nbytes
    raise KeyError(family)


FAMILIES = ("attention", "attention_explicit", "local", "ls", "s4", "s4d", "dss", "gss", "mega", "mega_chunk", "contextpool")


def _family(name: str) -> str | None:
    head = name.split("+", 1)[0]
    return head if head in FAMILIES else None


def block_costs(name: str, module: Any, L: int, D: int, batch: int = 1) -> dict[str, Any]:
    """FLOPs and bytes of one forward of `module` at (batch, L, D), and where they came from.

    `module` is a block, or a backbone `Layer` holding one as `.block` (its norm and feed-forward are then
    counted as dense layers). Returns `flops_fwd`, `bytes_fwd` (None when unknown: the harness then uses what
    FlopCounterMode counted), `cost_source` and `cost_params` (the hyper-parameters a formula read or assumed).
    """
    target = getattr(module, "block", module)
    f_m, b_m = getattr(target, "flops", None), getattr(target, "bytes", None)
    flops = float(f_m(L, D)) if callable(f_m) else None
    nbytes = float(b_m(L, D)) if callable(b_m) else None
    source = ["block"] if flops is not None or nbytes is not None else []
    params: dict[str, Any] = {}
    family = _family(name)
    if (flops is None or nbytes is None) and family is not None:
        f_d, b_d = dense_costs(module, L)
        f_x, b_x = _extra(family, target, L, D, params)
        flops = f_d + f_x if flops is None else flops
        nbytes = b_d + b_x if nbytes is None else nbytes
        source.append(f"formula:{family}")
    return {
        "flops_fwd": None if flops is None else flops * batch,
        "bytes_fwd": None if nbytes is None else nbytes * batch,
        "cost_source": "+".join(source) if source else "counted",
        "cost_params": params,
    }


def floor_ms(flops: float | None, nbytes: float | None, matmul_gflops: float, copy_gbs: float) -> float | None:
    """The roofline floor in ms: the larger of compute time at the matmul rate and traffic time at copy rate."""
    if not flops and not nbytes:
        return None
    t_c = (flops or 0.0) / (matmul_gflops * 1e9)
    t_m = (nbytes or 0.0) / (copy_gbs * 1e9)
    return max(t_c, t_m) * 1e3

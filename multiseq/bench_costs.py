"""FLOP and byte counts per block, for the benchmark's floor: `max(FLOPs / matmul rate, bytes / copy rate)`.

Where a count comes from, in order (the JSON says which in `cost_source`):

1. `block`: the block class defines `flops(L, D)` and/or `bytes(L, D)` (forward, batch 1, fp32). A block that
   knows its own algorithm should say so; these methods are optional.
2. `formula:<family>`: the formulas below for the known families, reading the block's hyper-parameters from its
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
    # First attribute present among `names` (on the block or its `inner`), and whether it was found.
    for obj in (module, getattr(module, "inner", None)):
        if obj is None:
            continue
        for n in names:
            v = getattr(obj, n, None)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v), True
    return float(default), False


def _fft_flops(n: int) -> float:
    # A real FFT of length n: about 2.5 n log2 n flops (half of the complex 5 n log2 n).
    return 2.5 * n * math.log2(max(n, 2))


def _mha(L: int, D: int, keys_per_query: float) -> tuple[float, float]:
    # Q, K, V, O projections plus scores and weighted sum over `keys_per_query` keys.
    flops = 8 * L * D * D + 4 * L * keys_per_query * D
    nbytes = 2 * F32 * (4 * D * D + 6 * L * D)  # weights, x, q, k, v, attended, y
    return flops, nbytes


def _ssm_conv(L: int, H: float, N: float) -> tuple[float, float]:
    # Diagonal SSM kernel (N/2 complex modes x L per channel, ~8 flops each) and FFT convolution of length 2L:
    # rfft(u), rfft(k), pointwise product, irfft.
    kernel = 8 * (N / 2) * L * H
    conv = H * (3 * _fft_flops(2 * L) + 6 * (L + 1))
    nbytes = 2 * F32 * H * (L + 2 * L + 2 * L + 2 * L + 2 * L)  # kernel, u_f, k_f, product, irfft output
    return kernel + conv, nbytes


def _formula(family: str, module: Any, L: int, D: int) -> tuple[float, float, dict[str, Any]]:
    """(flops, bytes, parameters used) for one forward at batch 1."""
    p: dict[str, Any] = {}

    def get(key: str, names: tuple[str, ...], default: float) -> float:
        v, found = _attr(module, names, default)
        p[key] = v if found else f"{v} (assumed)"
        return v

    if family in ("attention", "attention_explicit"):
        flops, nbytes = _mha(L, D, L)
        if family == "attention_explicit":
            H = get("heads", ("heads", "num_heads"), 8)
            nbytes += 4 * F32 * H * L * L  # scores and probabilities, each written and read
        return flops, nbytes, p
    if family == "local":
        w = get("window", ("window", "window_size"), 256)
        return (*_mha(L, D, min(w + 1, L)), p)
    if family == "ls":
        w = get("window", ("window", "window_size", "segment"), 128)
        r = get("rank", ("rank", "dp_rank", "r", "num_landmarks"), 32)
        flops, nbytes = _mha(L, D, min(r + 2 * w, L))
        flops += 2 * L * D * r + 4 * L * r * D  # dynamic projection W_P and the r landmark keys/values
        return flops, nbytes, p
    if family in ("s4", "s4d", "dss"):
        N = get("state", ("d_state", "state_size", "N", "n_state"), 64)
        flops, nbytes = _ssm_conv(L, D, N)
        flops += 2 * L * D * 2 * D  # GLU output projection D -> 2D
        nbytes += 2 * F32 * (2 * D * D + 4 * L * D)
        return flops, nbytes, p
    if family == "gss":
        N = get("state", ("d_state", "state_size", "N", "n_state"), 64)
        e = get("expand", ("expand", "gate"), 4)
        b = get("bottleneck", ("bottleneck",), 4)
        Hc = D / b
        flops, nbytes = _ssm_conv(L, Hc, N)
        # bottleneck D -> D/b, gate D -> eD, conv output D/b -> eD, out eD -> D
        flops += 2 * L * D * (Hc + e * D) + 2 * L * Hc * e * D + 2 * L * e * D * D
        nbytes += 2 * F32 * L * (D + Hc + 3 * e * D + D)
        return flops, nbytes, p
    if family in ("mega", "mega_chunk"):
        z = get("zdim", ("zdim", "z_dim", "qk_dim"), 64)
        v = get("hdim", ("hdim", "v_dim", "value_dim"), 2 * D)
        n = get("ndim", ("ndim", "ema_dim", "n_dim"), 16)
        default_chunk = 128 if family == "mega_chunk" else 0
        c = get("chunk", ("chunk", "chunk_size"), default_chunk)
        keys = L if c <= 0 else min(c, L)
        ema = 2 * D * n * L + D * (3 * _fft_flops(2 * L) + 6 * (L + 1))
        proj = 2 * L * D * v + 2 * L * D * (D + z + v + D) + 2 * L * v * D
        attn = 2 * L * keys * z + 2 * L * keys * v
        nbytes = 2 * F32 * L * (D + v + (2 * D + z + v) + 2 * z + v + D) + 2 * F32 * D * 8 * L
        ffn = get("ffn_hidden", ("ffn_hidden", "ffn_dim"), 2 * D)
        return ema + proj + attn + 4 * L * D * ffn, nbytes + 2 * F32 * L * ffn, p
    if family == "contextpool":
        w = get("pool_window", ("pool_window", "support", "max_support"), 64)
        # Predictor (D -> 2) and a weighted pool of w neighbours per token, then the inner block.
        flops = 2 * L * D * 2 + 4 * L * w * D
        nbytes = 2 * F32 * 4 * L * D
        inner = getattr(module, "inner", None)
        if inner is not None:
            iname = getattr(type(inner), "block_name", "")
            f2, b2, p2 = _formula(_family(iname), inner, L, D) if _family(iname) else (0.0, 0.0, {})
            flops, nbytes = flops + f2, nbytes + b2
            p.update({f"inner.{k}": v for k, v in p2.items()})
        return flops, nbytes, p
    raise KeyError(family)


FAMILIES = ("attention", "attention_explicit", "local", "ls", "s4", "s4d", "dss", "gss", "mega", "mega_chunk", "contextpool")


def _family(name: str) -> str | None:
    head = name.split("+", 1)[0]
    return head if head in FAMILIES else None


def block_costs(name: str, module: Any, L: int, D: int, batch: int = 1) -> dict[str, Any]:
    """FLOPs and bytes of one forward of `module` at (batch, L, D), and where they came from.

    Returns a dict with `flops_fwd`, `bytes_fwd` (None when unknown: the worker then uses what it counted),
    `cost_source` and `cost_params` (the hyper-parameters a formula read or assumed).
    """
    target = getattr(module, "block", module)  # a backbone Layer holds the block as `.block`
    f_m, b_m = getattr(target, "flops", None), getattr(target, "bytes", None)
    flops = nbytes = None
    source: list[str] = []
    params: dict[str, Any] = {}
    if callable(f_m):
        flops, source = float(f_m(L, D)), ["block"]
    if callable(b_m):
        nbytes = float(b_m(L, D))
        source = source or ["block"]
    family = _family(name)
    if (flops is None or nbytes is None) and family is not None:
        f2, b2, params = _formula(family, target, L, D)
        if flops is None:
            flops = f2
        if nbytes is None:
            nbytes = b2
        source.append(f"formula:{family}")
    ffn = getattr(module, "ffn", None) if target is not module else None
    if ffn is not None and flops is not None and nbytes is not None:
        # Layer scope: the feed-forward (D -> hidden -> D) and its activations.
        hidden = sum(p.numel() for p in ffn.parameters() if p.dim() == 2) / (2 * D)
        flops += 4 * L * D * hidden
        nbytes += 2 * F32 * L * (2 * hidden + 2 * D)
        source.append("ffn")
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

"""Fused GPU paths ("fused path": a Triton or compiled implementation of an op; not the SSM convolution kernel
`K` that S4 and Mega compute, which the fused paths may produce) and the dispatcher that chooses them.

Every fused op has a plain-PyTorch reference beside the block that uses it; the reference is the specification
and the CPU path. A fused path is registered here with a check, and is chosen only when it can run:

    register_fused("local_attention", "FlexAttention sliding-window block mask", needs=("cuda", "flex"))
    if use_fused("local_attention", q): ...

`MULTISEQ_KERNELS` selects the policy, read when the dispatcher is asked (blocks ask at construction):
`auto` (default: fused when available), `off` (always the reference). `multiseq info` prints `explain()`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

KERNELS_ENV = "MULTISEQ_KERNELS"
_POLICIES = ("auto", "off")


@dataclass(frozen=True)
class FusedPath:
    """A registered fused implementation of a functional op.

    Attributes:
        name: the functional op it accelerates (e.g. `vandermonde_kernel`).
        description: what it is (e.g. "Triton chunked log-Vandermonde").
        needs: requirements among `cuda`, `triton`, `flex` (FlexAttention), `compile`.
    """

    name: str
    description: str
    needs: tuple[str, ...] = ("cuda", "triton")


_PATHS: dict[str, FusedPath] = {}


def register_fused(name: str, description: str, needs: tuple[str, ...] = ("cuda", "triton")) -> FusedPath:
    """Register (or re-register) a fused path for the functional op `name`."""
    path = FusedPath(name, description, tuple(needs))
    _PATHS[name] = path
    return path


def policy() -> str:
    """The current `MULTISEQ_KERNELS` policy; an invalid value raises with the valid ones."""
    value = os.environ.get(KERNELS_ENV, "auto").strip().lower() or "auto"
    if value not in _POLICIES:
        raise ValueError(f"{KERNELS_ENV}={value!r} is not valid; use one of {', '.join(_POLICIES)}")
    return value


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def _requirement_missing(need: str, device: torch.device | None) -> str | None:
    if need == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA device"
        if device is not None and device.type != "cuda":
            return f"tensors are on {device.type}, the fused path needs CUDA"
        return None
    if need == "triton":
        return None if triton_available() else "triton is not installed"
    if need == "flex":
        if importlib.util.find_spec("torch.nn.attention.flex_attention") is None:
            return f"FlexAttention needs torch >= 2.5 (have {torch.__version__})"
        return None
    if need == "compile":
        return None if hasattr(torch, "compile") else "torch.compile is unavailable"
    return f"unknown requirement {need!r}"


def why_not(name: str, device: torch.device | None = None) -> str | None:
    """None when the fused path for `name` can run on `device`, else the reason it cannot."""
    if name not in _PATHS:
        return "no fused path is registered"
    pol = policy()
    if pol == "off":
        return f"{KERNELS_ENV}=off"
    for need in _PATHS[name].needs:
        reason = _requirement_missing(need, device)
        if reason:
            return reason
    return None


def use_fused(name: str, *tensors: torch.Tensor) -> bool:
    """True when the fused path for `name` can run on the device of `tensors` under the current policy."""
    device = tensors[0].device if tensors else None
    return why_not(name, device) is None


def explain() -> list[tuple[str, str, bool, str]]:
    """(op, description, available, reason) for every registered fused path, on the default CUDA device.

    Paths are registered by the block modules that use them; import `multiseq.blocks` first to see them all.
    """
    out = []
    for name, path in sorted(_PATHS.items()):
        reason = why_not(name, torch.device("cuda") if torch.cuda.is_available() else None)
        out.append((name, path.description, reason is None, reason or "available"))
    return out


def is_tracing() -> bool:
    """True under torch.compile, torch.export or TorchScript tracing.

    Data-dependent Python branches (`int(x.max())`, `bool(mask.all())`) break a compiled graph and cannot be
    exported; callers skip eager-only checks and take the general path of a fast-path branch when this is True.
    """
    compiler = getattr(torch, "compiler", None)
    exporting = getattr(compiler, "is_exporting", None)
    return bool(
        (compiler is not None and compiler.is_compiling()) or (exporting is not None and exporting()) or torch.jit.is_tracing()
    )

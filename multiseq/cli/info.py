"""`multiseq info` and `multiseq models`."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform

import torch

import multiseq
from multiseq.kernels import KERNELS_ENV, explain, policy


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def collect() -> dict:
    """Everything `multiseq info` prints, as a dict."""
    import multiseq.blocks  # noqa: F401  (registers fused paths)

    cuda = torch.cuda.is_available()
    return {
        "multiseq": multiseq.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {d: _version(d) for d in ("torch", "torchvision", "timm", "triton", "numpy", "safetensors", "einops", "pangocffi", "pangocairocffi", "scikit-learn", "matplotlib")},
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "kernels_policy": policy(),
        "fused_paths": [
            {"op": op, "description": d, "available": ok, "reason": reason} for op, d, ok, reason in explain()
        ],
    }


def add_info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_info(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        import json

        print(json.dumps(info, indent=2))
        return 0
    print(f"multiseq {info['multiseq']}  python {info['python']}  {info['platform']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"device: {info['device']}" + (f" (CUDA {info['cuda']})" if info["cuda"] else ""))
    print(f"threads: torch {info['torch_threads']} of {info['cpu_count']} CPUs")
    print(f"kernels: {KERNELS_ENV}={info['kernels_policy']}")
    for p in info["fused_paths"]:
        state = "available" if p["available"] else f"not used: {p['reason']}"
        print(f"  {p['op']:<22} {p['description']}: {state}")
    return 0


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 's4*' or '*_bytes_*'")


def run_models(args: argparse.Namespace) -> int:
    for name in multiseq.list_models(args.pattern):
        print(name)
    return 0

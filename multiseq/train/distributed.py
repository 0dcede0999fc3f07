"""Process-group setup under torchrun, barriers, all-sums, and the RNG states a checkpoint carries per rank."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiseq.errors import CheckpointError


def _dist_setup(device: Any) -> tuple[int, int, torch.device]:
    """(rank, world, device); initialises the process group under torchrun (NCCL on GPUs, gloo on CPU)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and str(device or "auto") in ("auto", "cuda")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            device = torch.device("cpu")
    return rank, world, torch.device(device)


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def _all_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def _gather_rng(world: int, device: torch.device) -> dict[str, Tensor]:
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    if world == 1:
        return {f"rng/{k}/rank0": v for k, v in states.items()}
    out = {}
    for k, v in states.items():
        parts = [torch.empty_like(v.to(device)) for _ in range(world)]
        torch.distributed.all_gather(parts, v.to(device))
        out.update({f"rng/{k}/rank{r}": p.cpu() for r, p in enumerate(parts)})
    return out


def _set_rng(tensors: dict[str, Tensor], state: dict[str, Any], rank: int, device: torch.device) -> None:
    key = f"rng/torch/rank{rank}"
    if key not in tensors:
        raise CheckpointError(f"the checkpoint has no RNG state for rank {rank}; it was written by fewer processes")
    torch.set_rng_state(tensors[key])
    if device.type == "cuda" and f"rng/cuda/rank{rank}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng/cuda/rank{rank}"], device)
    py = state["python_rng"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy_rng"]
    np.random.set_state((np_state[0], tensors["rng/numpy"].numpy().astype(np.uint32), *np_state[1:]))


def _host_rng() -> tuple[dict[str, Tensor], dict[str, Any]]:
    py = random.getstate()
    ns = np.random.get_state()
    return (
        {"rng/numpy": torch.from_numpy(ns[1].astype(np.int64))},
        {"python_rng": [py[0], list(py[1]), py[2]], "numpy_rng": [ns[0], int(ns[2]), int(ns[3]), float(ns[4])]},
    )

"""What one optimiser step minimises: the classification loss (`fit`) or a self-pretraining objective (`pretrain`),
and the step itself (`Stepper`): learning rate, accumulation, DDP sync, clipping."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseq.checkpoint import load_tensors
from multiseq.train.data import _forward
from multiseq.train.evaluate import _autocast
from multiseq.train.objectives import PretrainConfig, SelfPretraining
from multiseq.train.records import RunContext


class Classification:
    """Cross-entropy on the labels (with label smoothing); reports accuracy."""

    stage = "train"
    reports_accuracy = True

    def __init__(self, net: nn.Module, label_smoothing: float = 0.0) -> None:
        self.net = self.module = net
        self.label_smoothing = label_smoothing

    def __call__(self, module: nn.Module, batch: tuple, device: torch.device) -> tuple[Tensor, float, float]:
        """-> (mean loss, hits, count)."""
        logits, y = _forward(module, batch, device)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        return loss, float((logits.argmax(-1) == y).sum()), float(len(y))

    def describe(self) -> dict[str, Any]:
        return {}

    def extra_tensors(self) -> dict[str, Tensor]:
        return {}

    def load_extra(self, tensors: dict[str, Tensor], where: str) -> None:
        pass

    def close(self) -> None:
        pass


class Pretraining:
    """A `SelfPretraining` objective on the inputs; labels are ignored. The task head takes no part (frozen while
    pretraining, saved untouched); the mask vector and reconstruction head travel in the training checkpoints."""

    stage = "pretrain"

    def __init__(self, net: nn.Module, config: PretrainConfig) -> None:
        self.net = net
        self.module = self.wrapper = SelfPretraining(net, config)
        self.reports_accuracy = self.wrapper.classify
        # Parameters that get no gradient must not reach the optimiser or DDP's reducer.
        self._frozen = [p for p in net.head.parameters() if p.requires_grad]
        if self.wrapper.causal and self.wrapper.mask_token.requires_grad:
            self._frozen.append(self.wrapper.mask_token)
        for p in self._frozen:
            p.requires_grad_(False)

    def __call__(self, module: nn.Module, batch: tuple, device: torch.device) -> tuple[Tensor, float, float]:
        x, m, x2, m2, _ = (t.to(device, non_blocking=True) if t is not None else None for t in batch)
        if x2 is not None:  # document pairs: both documents are inputs to learn from
            x, m = _stack(x, m, x2, m2)
        loss, stats = module(x, m)
        return loss, stats["correct"], stats["count"]

    def describe(self) -> dict[str, Any]:
        w = self.wrapper
        resolved = {"objective": "causal" if w.causal else "masked", "mask_ratio": None if w.causal else w.ratio,
                    "span": None if w.causal else w.span}
        return {**w.config.to_dict(), "resolved": resolved}

    def extra_tensors(self) -> dict[str, Tensor]:
        return {f"pretrain/{k}": v for k, v in self.wrapper.state_dict().items() if not k.startswith("model.")}

    def load_extra(self, tensors: dict[str, Tensor], where: str) -> None:
        own = {k: v for k, v in tensors.items() if k.startswith("pretrain/")}
        holder = _Extra(self.wrapper)
        load_tensors(holder, {k[len("pretrain/"):]: v for k, v in own.items()}, f"{where} (pretraining head)")

    def close(self) -> None:
        for p in self._frozen:
            p.requires_grad_(True)


class _Extra(nn.Module):
    """The wrapper's own parameters (mask vector, reconstruction head) without the model, for strict loading."""

    def __init__(self, wrapper: SelfPretraining) -> None:
        super().__init__()
        self.mask_token = wrapper.mask_token
        self.recon = wrapper.recon


def _stack(x: Tensor, m: Tensor, x2: Tensor, m2: Tensor) -> tuple[Tensor, Tensor]:
    """Two batches of sequences `(B, L1, ...)`, `(B, L2, ...)` -> one `(2B, max L, ...)`, padding masked out."""
    L = max(x.shape[1], x2.shape[1])

    def pad(t: Tensor) -> Tensor:
        widths = [0, 0] * (t.dim() - 2) + [0, L - t.shape[1]]
        return F.pad(t, widths)

    return torch.cat([pad(x), pad(x2)]), torch.cat([pad(m), pad(m2)])


class Stepper:
    """One optimiser step: set the scheduled learning rate, run the micro-batches, clip, step."""

    def __init__(self, ctx: RunContext, objective: Any, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.ctx, self.objective, self.module, self.optimizer = ctx, objective, module, optimizer

    def step(self, batches: Any, step: int, lr_factor: float) -> tuple[float, float, float]:
        """-> (mean loss, hits, count) of this process's micro-batches."""
        cfg, world = self.ctx.cfg, self.ctx.world
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * lr_factor
        loss_sum = hits = count = 0.0
        for a in range(cfg.accumulate):
            batch = next(batches)
            sync = a == cfg.accumulate - 1 or world == 1
            with (contextlib.nullcontext() if sync else self.module.no_sync()), _autocast(self.ctx.device, cfg.precision):
                loss, h, c = self.objective(self.module, batch, self.ctx.device)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the lr or check the data")
            (loss / cfg.accumulate).backward()
            loss_sum += loss.item() * c
            hits += h
            count += c
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.objective.module.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum / max(count, 1), hits, count


class Snapshot:
    """Module and optimiser state and every RNG, to put back exactly after a rehearsal (budget timing, dry run)."""

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer | None, device: torch.device) -> None:
        import copy

        self.module, self.optimizer, self.device = module, optimizer, device
        self.weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.opt = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
        self.rng = (torch.get_rng_state(), random.getstate(), np.random.get_state(),
                    torch.cuda.get_rng_state(device) if device.type == "cuda" else None)

    def restore(self) -> None:
        import copy

        self.module.load_state_dict(self.weights)
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
            self.optimizer.load_state_dict(copy.deepcopy(self.opt))
        torch.set_rng_state(self.rng[0])
        random.setstate(self.rng[1])
        np.random.set_state(self.rng[2])
        if self.rng[3] is not None:
            torch.cuda.set_rng_state(self.rng[3], self.device)

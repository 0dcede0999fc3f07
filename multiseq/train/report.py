"""What a run tells its user: metrics.jsonl records, progress-bar postfixes or plain log lines (rank 0 only)."""

from __future__ import annotations

import time
from typing import Any

from multiseq.train.distributed import _barrier
from multiseq.train.evaluate import evaluate
from multiseq.train.records import Clock, Plan, RunContext, Window
from multiseq.train.rundir import _Log


class Reporter:
    """Logs the training window, evaluations and the budget of one run."""

    def __init__(self, ctx: RunContext, objective: Any) -> None:
        self.ctx, self.objective = ctx, objective
        self.log = _Log(ctx.run_dir / "metrics.jsonl" if ctx.writes else None)

    def _say(self, line: str, bar: Any = None) -> None:
        if not self.ctx.main:
            return
        if self.ctx.progress:
            from tqdm.auto import tqdm

            tqdm.write(line)  # above the bar, which stays in place
        else:
            print(line, flush=True)

    def train(self, window: Window, done: int, plan: Plan, optimizer: Any, clock: Clock, bar: Any) -> dict[str, Any]:
        """Drain the window into a `kind: train` record (loss; accuracy: classification hits or token hits)."""
        ctx = self.ctx
        loss, acc, count, seconds = window.drain(ctx.world, ctx.device)
        record: dict[str, Any] = {"kind": "train", "step": done, "epoch": ctx.epoch(done), "loss": loss}
        if self.objective.reports_accuracy:
            record["accuracy"] = acc
        record.update(lr=optimizer.param_groups[0]["lr"], samples_per_s=count / seconds, time_s=clock.wall_s)
        if self.objective.stage == "pretrain":
            record["stage"] = "pretrain"
            del record["samples_per_s"]
            record["scored_per_s"] = count / seconds  # scored inputs (masked positions / next inputs) per second
        if not ctx.main:
            return record
        self.log(record)
        acc_text = f"  acc {record['accuracy']:.3f}" if "accuracy" in record else ""
        rate = record.get("samples_per_s", record.get("scored_per_s"))
        if ctx.progress:
            post = {"loss": f"{loss:.4f}", **({"acc": f"{record['accuracy']:.3f}"} if acc_text else {}), "rate": f"{rate:.0f}"}
            bar.set_postfix(post)
        else:
            eta = (plan.total - done) * record["time_s"] / max(done, 1)
            unit = "samples/s" if "samples_per_s" in record else "scored inputs/s"
            print(f"step {done}/{plan.total}  loss {loss:.4f}{acc_text}  lr {record['lr']:.2e}  {rate:.1f} {unit}  "
                  f"eta {eta:.0f}s", flush=True)
        return record

    def evaluate(self, net: Any, val: Any, done: int, last: dict[str, Any]) -> float:
        """Evaluate on rank 0 (others wait); returns the seconds spent so throughput and budget exclude them."""
        ctx, cfg = self.ctx, self.ctx.cfg
        t0 = time.perf_counter()
        if ctx.main:
            res = evaluate(net, val, cfg.eval_batch_size or cfg.batch_size, ctx.device, ctx.progress, cfg.precision,
                           cfg.num_workers)
            record = {"kind": "eval", "split": "val", "step": done, "epoch": ctx.epoch(done), **res}
            self.log(record)
            last["eval"] = record
            self._say(f"eval step {done}: loss {res['loss']:.4f}  accuracy {res['accuracy']:.4f}  (n={res['n']})")
        _barrier(ctx.world)
        return time.perf_counter() - t0

    def budget(self, rec: dict[str, Any]) -> None:
        """The step count a budget fixed (recorded at step 0, so a resume keeps it)."""
        minutes = self.ctx.cfg.budget_minutes
        if self.ctx.main:
            self.log({"kind": "budget", "step": 0, "budget_minutes": minutes, **rec})
        if rec["step_s"]:
            self._say(f"budget {minutes:g} min: {rec['step_s'] * 1000:.1f} ms per step -> {rec['total_steps']} steps")
        else:
            self._say(f"budget {minutes:g} min: the run is capped at {rec['total_steps']} steps (not timed)")

    def budget_end(self, done: int, plan: Plan, stopped: bool, clock: Clock) -> dict[str, Any]:
        record = {"kind": "budget_end", "step": done, "total_steps": plan.total, "stopped_at_budget": stopped,
                  "train_s": clock.train_s, "wall_s": clock.wall_s, "budget_minutes": self.ctx.cfg.budget_minutes}
        if self.ctx.main:
            self.log(record)
        if stopped:
            self._say(f"stopped at the budget ({self.ctx.cfg.budget_minutes:g} min) after {done} of {plan.total} steps")
        self._say(f"wall time {clock.wall_s:.1f}s (training {clock.train_s:.1f}s, evaluation excluded)")
        return record

"""Comparing two models' drops under the same noise, with a paired bootstrap over the shared examples.

A sweep (`multiseq.robustness.sweep.sweep`) records every example's outcome, clean and under each (noise, severity).
When two models were swept on the same examples with the same noise seed, each example is one paired observation
of both models, so the difference of their drops (or of a drop and a fraction of the other's) gets a bootstrap
interval that accounts for the pairing:

    from multiseq.robustness.compare import compare_drops
    c = compare_drops(results["rendered"], results["bytes"], "confusable", 0.5, factor=0.5)
    c["difference"], c["low"], c["high"]     # drop(rendered) - 0.5 * drop(bytes), with its 95% interval
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multiseq.errors import ConfigError
from multiseq.robustness.sweep import bootstrap_indices


def _outcomes(bits: str) -> np.ndarray:
    return np.frombuffer(bits.encode("ascii"), dtype=np.uint8) == ord("1")


def _cell(result: dict[str, Any], noise: str, severity: float) -> dict[str, Any]:
    for row in result["rows"]:
        if row["noise"] == noise and abs(float(row["severity"]) - float(severity)) < 1e-9:
            return row
    cells = sorted({(r["noise"], r["severity"]) for r in result["rows"]})
    raise ConfigError(f"no sweep cell ({noise!r}, {severity}); the sweep holds {cells}")


def compare_drops(
    a: dict[str, Any], b: dict[str, Any], noise: str, severity: float, factor: float = 1.0,
    resamples: int = 2000, seed: int = 0, level: float = 0.95,
) -> dict[str, Any]:
    """`drop(a) - factor * drop(b)` under one (noise, severity), with a paired percentile-bootstrap interval.

    Args:
        a, b: two sweep results (as returned by `sweep` or read from `results.json`) over the same examples and
            noise seed; their per-example outcomes (`clean_correct`, each row's `correct`) are paired by position.
        noise, severity: the cell compared.
        factor: weight of b's drop (0.5: "a loses at most half of what b loses" holds when `high < 0`).
        resamples, seed, level: the bootstrap.

    Returns:
        `{"noise", "severity", "factor", "drop_a", "drop_b", "difference", "low", "high", "n", "resamples"}`;
        `difference < 0` with `high < 0` means a's drop is below `factor` times b's at the given level.
    """
    if a.get("seed") != b.get("seed") or a.get("n") != b.get("n"):
        raise ConfigError(f"the two sweeps are not paired: seeds {a.get('seed')} / {b.get('seed')}, examples "
                          f"{a.get('n')} / {b.get('n')}; sweep both on the same data with the same seed")
    if not 0 < level < 1:
        raise ConfigError(f"level must lie in (0, 1), got {level}")
    ca, cb = _outcomes(a["clean_correct"]), _outcomes(b["clean_correct"])
    na, nb = _outcomes(_cell(a, noise, severity)["correct"]), _outcomes(_cell(b, noise, severity)["correct"])
    n = len(ca)
    if not n or not len(cb) == len(na) == len(nb) == n:
        raise ConfigError("the sweeps' per-example outcomes differ in length; they are not over the same examples")
    # Per example: its contribution to drop(a) - factor * drop(b).
    per = (ca.astype(np.float64) - na) - factor * (cb.astype(np.float64) - nb)
    means = per[bootstrap_indices(n, resamples, seed)].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {
        "noise": noise, "severity": float(severity), "factor": float(factor),
        "drop_a": float(ca.mean() - na.mean()), "drop_b": float(cb.mean() - nb.mean()),
        "difference": float(per.mean()), "low": float(low), "high": float(high), "n": n, "resamples": resamples,
    }

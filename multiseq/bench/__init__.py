"""Benchmarks: every block measured the same way, side by side with attention, PyPI peers and the machine's floor.

    from multiseq.bench import BenchSpec, benchmark, derive
    record = benchmark(BenchSpec(blocks=("local", "s4d"), lengths=(1024, 4096), width=256))

`core` (orchestration: one fresh process per configuration, derived ratios and exponents), `worker` (one
configuration, run as `python -m multiseq.bench.worker`), `costs` (FLOP and byte counts for the floor), `peers`
(PyPI implementations measured side by side), `report` (tables and plot), `fused` (fused paths checked against
their references and timed, `python -m multiseq.bench.fused`). The command line is `multiseq bench`.
"""

from multiseq.bench.core import (
    BASELINES,
    BenchSpec,
    SCHEMA,
    benchmark,
    derive,
    fit_exponent,
    measure_machine,
    merge_records,
    run_worker,
)

__all__ = ["BASELINES", "BenchSpec", "SCHEMA", "benchmark", "derive", "fit_exponent", "measure_machine", "merge_records", "run_worker"]

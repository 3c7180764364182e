"""Benchmarks as records: ``senet bench`` (see docs/benchmarks.md).

Each suite times its contenders in interleaved rounds after a warm-up, reports medians and ratios with
their spread, marks each ratio PASS or FAIL against its target (never failing the run), and writes its
configuration, the machine and the code version next to the numbers.

    >>> from senet.bench import BenchOptions, run_benchmarks
    >>> record = run_benchmarks(BenchOptions(suite="se", quick=True, out=None))  # doctest: +SKIP
    >>> print(record.markdown)                                                   # doctest: +SKIP

Modules: ``harness`` (timing), ``memory`` (peak memory), ``environment`` (machine, code version),
``result``/``report`` (records), and one per suite: ``se_block``, ``network``, ``engine``, ``compile``.
Importing this package does no work.
"""

from .harness import Comparison, Ratio, Stats, compare, cpu_timer, cuda_timer, geometric_mean, timer_for
from .memory import MemoryPeak, StorageTracker
from .result import Check, SuiteResult, Table
from .runner import SUITES, BenchOptions, BenchRecord, run_benchmarks

__all__ = [
    "SUITES",
    "BenchOptions",
    "BenchRecord",
    "Check",
    "Comparison",
    "MemoryPeak",
    "Ratio",
    "Stats",
    "StorageTracker",
    "SuiteResult",
    "Table",
    "compare",
    "cpu_timer",
    "cuda_timer",
    "geometric_mean",
    "run_benchmarks",
    "timer_for",
]

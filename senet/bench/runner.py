"""Runs suites and writes the record: ``run_benchmarks(BenchOptions(...))`` is what ``senet bench`` calls."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .._choices import BENCH_APART_SUITES, BENCH_SUITES
from .._plural import plural
from ..utils.allocator import tune_cpu_allocator
from .environment import CpuMonitor, code_version, machine_info, other_cpu_load
from .report import check_writable, record_markdown, suite_markdown, write_record
from .result import SuiteResult

# Suite name -> module in senet.bench holding `run(options) -> SuiteResult`, in the order `all` runs them.
SUITES: dict[str, str] = dict(zip(BENCH_SUITES, ("se_block", "network", "engine", "cifar", "compile"), strict=True))
# Left out of `--suite all --quick`: compiling two ResNet-50s takes minutes at any input size.
QUICK_SKIPS = ("compile",)
BUSY = 0.1  # above this share of the CPUs used by other processes, a suite's timings are flagged


def max_threads() -> int:
    """The most threads a benchmark may use: the CPUs of this machine (and the default 2 on a 1-CPU one)."""
    return max(os.cpu_count() or 1, 2)


def check_run_settings(*, device: str, threads: int, repeats: int | None, seed: int) -> None:
    """The checks every benchmark's options share (``BenchOptions``, ``senet.bench.zoo.ZooOptions``).

    Raises:
        ValueError: On threads outside 1..``max_threads()``, repeats < 1, a negative seed, or a device that
            is not cpu, cuda or cuda:N (or CUDA that is not available).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if threads > max_threads():  # thousands of threads crash the OpenMP runtime (a segmentation fault)
        raise ValueError(f"threads must be at most {max_threads()} (this machine's CPUs; more only "
                         f"oversubscribe them), got {threads}")  # fmt: skip
    if repeats is not None and repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")


@dataclass(frozen=True)
class BenchOptions:
    """How to benchmark.

    Attributes:
        suite: A name of ``SUITES`` or 'all' (the ``zoo`` suite has its own options, ``ZooOptions``).
        quick: Few repeats and small shapes: a smoke run, not a measurement. With ``suite='all'`` it
            leaves out the suites of ``QUICK_SKIPS`` (compile).
        device: 'cpu' or 'cuda' (or 'cuda:N').
        threads: ``torch.set_num_threads`` for the run.
        repeats: Override every suite's number of interleaved rounds.
        cold_compile: Disable the compile caches (``compile`` suite), so compile times are cold.
        out: Where the JSON and markdown records go (``None``: write nothing).
        seed: Seeds models and inputs.
    """

    suite: str = "all"
    quick: bool = False
    device: str = "cpu"
    threads: int = 2
    repeats: int | None = None
    cold_compile: bool = False
    out: str | None = "bench-results"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.suite in BENCH_APART_SUITES:
            raise ValueError(f"the {self.suite} suite runs apart from these: senet.bench.zoo.run_zoo(ZooOptions(...))")
        if self.suite != "all" and self.suite not in SUITES:
            raise ValueError(f"unknown suite {self.suite!r}; valid: {', '.join([*SUITES, 'all'])}")
        check_run_settings(device=self.device, threads=self.threads, repeats=self.repeats, seed=self.seed)

    @property
    def suites(self) -> list[str]:
        """The suites to run, in order."""
        if self.suite != "all":
            return [self.suite]
        return [s for s in SUITES if not (self.quick and s in QUICK_SKIPS)]

    @property
    def skipped(self) -> list[str]:
        """The suites ``suite='all'`` leaves out (under ``quick``)."""
        return [s for s in SUITES if self.suite == "all" and s not in self.suites]

    def rounds(self, full: int, quick: int) -> int:
        """The number of rounds of a measurement: ``repeats`` if given, else ``quick`` or ``full``."""
        return self.repeats or (quick if self.quick else full)


@dataclass
class BenchRecord:
    """What ``run_benchmarks`` returns: the JSON-ready record, the suites, the markdown and the files."""

    record: dict[str, Any]
    suites: list[SuiteResult]
    markdown: str
    files: tuple[Path, ...] = ()


def run_benchmarks(options: BenchOptions, *, echo: Callable[[str], None] | None = None) -> BenchRecord:
    """Runs the suites of ``options`` and writes ``<out>/bench-<suite>-<timestamp>.json`` and ``.md``.

    Args:
        options: What to run.
        echo: Called with each suite's markdown as soon as it is done (e.g. ``print``).

    Returns:
        The :class:`BenchRecord`.

    Raises:
        OSError: If ``options.out`` cannot be written to (checked before anything runs).
    """
    if options.out is not None:
        check_writable(options.out)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    allocator_tuned = tune_cpu_allocator()  # the same for every contender; see senet.utils.allocator
    try:
        started = time.time()
        record: dict[str, Any] = {
            "suite": options.suite,
            "started": _iso(started),
            "config": {
                **asdict(options), "dtype": "float32", "suites": options.suites, "skipped": options.skipped,
                "allocator_tuned": allocator_tuned,
            },
            "machine": {**machine_info(options.device), "other_cpu_load_before": other_cpu_load()},
            "code": code_version(),
        }
        suites = []
        if options.skipped and echo is not None:
            echo(f"--quick leaves out the {', '.join(options.skipped)} suite (minutes of compilation); "
                 "`--suite compile` runs it.\n")  # fmt: skip
        stopped = None
        for name in options.suites:
            try:
                suites.append(_run_suite(name, options))
            except KeyboardInterrupt:  # Ctrl-C: the finished suites are kept (written below), then it stops
                stopped = name
                break
            if echo is not None:
                echo(suite_markdown(suites[-1]) + "\n")
        finished = time.time()
        record.update(
            finished=_iso(finished), seconds=finished - started,
            load_average_after=machine_info(options.device)["load_average"],
            suites={s.name: s.to_dict() for s in suites}, complete=stopped is None,
        )  # fmt: skip
        if stopped is not None:
            record["stopped_during"] = stopped
        markdown = record_markdown(record, suites)
        if stopped is not None:
            markdown += f"\nStopped (Ctrl-C) during the {stopped} suite: the record holds the suites finished before.\n"
        files: tuple[Path, ...] = ()
        if options.out is not None and (suites or stopped is None):
            stem = f"bench-{options.suite}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}"
            files = write_record(options.out, stem, record, markdown)
        if stopped is not None:
            if echo is not None and files:
                echo(f"stopped during the {stopped} suite; {plural(len(suites), 'finished suite')} kept in "
                     f"{files[0]} and {files[1]}")  # fmt: skip
            raise KeyboardInterrupt
        return BenchRecord(record, suites, markdown, files)
    finally:
        torch.set_num_threads(threads_before)


def _run_suite(name: str, options: BenchOptions) -> SuiteResult:
    """Runs one suite, timed, with the other processes' CPU load during it (a warning above ``BUSY``)."""
    module = importlib.import_module(f"senet.bench.{SUITES[name]}")
    start, monitor = time.perf_counter(), CpuMonitor().start()
    try:
        suite: SuiteResult = module.run(options)
    finally:
        load = monitor.stop()
    suite.seconds = time.perf_counter() - start
    suite.other_cpu_load = load
    if suite.other_cpu_load is not None and suite.other_cpu_load > BUSY:
        suite.notes.insert(0, f"WARNING: other processes used {100 * suite.other_cpu_load:.0f}% of the CPUs "
                           "during this suite; its timings are unreliable (rerun on a quiet machine).")
    return suite


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))

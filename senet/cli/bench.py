"""``senet bench``: timed, interleaved benchmarks written as records (see docs/benchmarks.md)."""

from __future__ import annotations

import argparse

from .._choices import BENCH_SUITES

ORDER = 60


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``bench`` command."""
    p = sub.add_parser(
        "bench",
        help="benchmark the SE block, the networks, compilation and the training engine",
        description=(
            "Times the contenders of each suite in interleaved rounds after a warm-up, prints medians and "
            "ratios with their spread and each target's PASS/FAIL mark (a missed target does not fail the "
            "command), and writes <out>/bench-<suite>-<timestamp>.json and .md with the configuration, the "
            "machine and the code version."
        ),
    )
    p.add_argument("--suite", choices=[*BENCH_SUITES, "all"], default="all", help="what to benchmark (default: all)")
    p.add_argument(
        "--quick", action="store_true",
        help="a smoke run, not a measurement: small shapes, few rounds, and --suite all leaves out the compile "
        "suite; about 10 s on 2 idle cores (a busy machine slows 2 threads up to tenfold: --threads 1 helps; "
        "--suite compile --quick still compiles for minutes)",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: 2)")
    p.add_argument("--repeats", type=int, help="interleaved rounds of every measurement (default: per suite)")
    p.add_argument("--cold-compile", action="store_true", help="compile suite: disable the compile caches")
    p.add_argument("--seed", type=int, default=0, help="seeds models and inputs (default: 0)")
    p.add_argument(
        "--out", default="bench-results",
        help="the folder of the records, created if needed and checked before anything runs (default: bench-results)",
    )  # fmt: skip
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench.runner import BenchOptions, run_benchmarks

    options = BenchOptions(
        suite=args.suite, quick=args.quick, device=args.device, threads=args.threads, repeats=args.repeats,
        cold_compile=args.cold_compile, seed=args.seed, out=None if args.no_write else args.out,
    )  # fmt: skip
    result = run_benchmarks(options, echo=lambda text: print(text, flush=True))
    for path in result.files:
        print(f"wrote {path}")
    return 0

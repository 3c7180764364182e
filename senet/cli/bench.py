"""``senet bench``: timed, interleaved benchmarks written as records (see docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import sys

from .._choices import BENCH_APART_SUITES, BENCH_SUITES

ORDER = 60
_ZOO_ONLY = ("models", "compiled", "fresh", "markdown")  # options of the zoo suite alone


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``bench`` command."""
    p = sub.add_parser(
        "bench",
        help="benchmark the SE block, the networks, compilation and the training engine",
        description=(
            "Times the contenders of each suite in interleaved rounds after a warm-up, prints medians and "
            "ratios with their spread and each target's PASS/FAIL mark (a missed target does not fail the "
            "command), and writes <out>/bench-<suite>-<timestamp>.json and .md with the configuration, the "
            "machine and the code version. The zoo suite (what SE costs every registered network) keeps "
            "<out>/zoo.json instead, resumed by the next run, and writes <out>/zoo.md."
        ),
    )
    p.add_argument(
        "--suite", choices=[*BENCH_SUITES, *BENCH_APART_SUITES, "all"], default="all",
        help=f"what to benchmark (default: all, which runs {', '.join(BENCH_SUITES)}; not zoo, every registered "
        "network with and without SE, which takes an hour and more on 2 cores and resumes where it stopped: "
        "name it)",
    )  # fmt: skip
    p.add_argument(
        "--quick", action="store_true",
        help="a smoke run, not a measurement: small shapes, few rounds, and --suite all leaves out the compile "
        "suite; about 10 s on 2 idle cores (a busy machine slows 2 threads up to tenfold: --threads 1 helps; "
        "--suite compile --quick still compiles for minutes; --suite zoo --quick: batch 2, one round)",
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
    zoo = p.add_argument_group("zoo suite")
    zoo.add_argument("--models", nargs="+", metavar="PATTERN",
                     help="the networks to measure: names, aliases or globs ('se_resnet*'), an SE network or its "
                     "plain twin (default: every SE network of the registry)")  # fmt: skip
    zoo.add_argument("--compiled", action="store_true",
                     help="also measure under torch.compile (minutes per ImageNet network on a CPU)")
    zoo.add_argument("--fresh", action="store_true",
                     help="start a new record: re-measure everything (the old zoo.json is moved aside, not deleted)")
    zoo.add_argument("--markdown", metavar="PATH",
                     help="also write the table here, e.g. docs/zoo.md (<out>/zoo.md is always written)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.suite == "zoo":
        return _run_zoo(args)
    given = [f"--{name}" for name in _ZOO_ONLY if getattr(args, name) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: options of --suite zoo alone, not of --suite {args.suite}")
    from ..bench.runner import BenchOptions, run_benchmarks

    options = BenchOptions(
        suite=args.suite, quick=args.quick, device=args.device, threads=args.threads, repeats=args.repeats,
        cold_compile=args.cold_compile, seed=args.seed, out=None if args.no_write else args.out,
    )  # fmt: skip
    result = run_benchmarks(options, echo=lambda text: print(text, flush=True))
    for path in result.files:
        print(f"wrote {path}")
    return 0


def _run_zoo(args: argparse.Namespace) -> int:
    if args.cold_compile:
        raise ValueError("--cold-compile is the compile suite's; the zoo suite compiles with the usual caches")
    from ..bench.zoo import ZooOptions, run_zoo

    options = ZooOptions(
        models=tuple(args.models or ()), compiled=args.compiled, quick=args.quick, fresh=args.fresh,
        device=args.device, threads=args.threads, repeats=args.repeats, seed=args.seed,
        out=None if args.no_write else args.out, markdown=args.markdown,
    )  # fmt: skip
    result = run_zoo(options, echo=lambda text: print(text, flush=True), progress=sys.stderr.isatty())
    print(result.markdown, flush=True)
    for path in result.files:
        print(f"wrote {path}")
    return 0

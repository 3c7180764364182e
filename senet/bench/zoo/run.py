"""Runs the zoo: ``run_zoo(ZooOptions(...))`` is what ``senet bench --suite zoo`` calls.

The work is a list of (network, kind) measurements (``senet.bench.zoo.measure.KINDS``): first the eager
ones of every selected network (cost, latency, training), then, with ``compiled``, the compiled ones.
Each is written to ``<out>/zoo.json`` as soon as it is made; those the record already holds are skipped
(``fresh`` starts over). Ctrl-C stops between or inside measurements: the finished ones are kept, the
markdown is written, and the same command continues.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..._errors import first_line
from ...io import atomic_write_text
from ...utils.allocator import tune_cpu_allocator
from ..environment import CpuMonitor, code_version, machine_info
from ..report import check_writable
from ..runner import BUSY, check_run_settings
from . import measure
from .pairs import ZooPair, select_pairs
from .record import RECORD_FILE, ZooRecord, fingerprint
from .table import ratio_text, zoo_markdown

MARKDOWN_FILE = "zoo.md"


@dataclass(frozen=True)
class ZooOptions:
    """What the zoo measures, and where it keeps the record.

    Attributes:
        models: Names, aliases or globs selecting networks (an SE network or its plain twin); empty: all.
        compiled: Also measure under ``torch.compile`` (minutes per ImageNet network on a CPU).
        quick: Batch 2, one round: a smoke run for tests, not a measurement (kept apart: its record's
            settings differ, so it never resumes a real one).
        fresh: Start a new record (an existing ``zoo.json`` is moved aside).
        device: 'cpu' or 'cuda' (or 'cuda:N').
        threads: ``torch.set_num_threads`` for the run.
        repeats: Interleaved rounds of every timing (default: 7 for latency, 5 for training).
        seed: Seeds the networks and inputs.
        out: The folder of ``zoo.json`` and ``zoo.md`` (``None``: keep the record in memory, write nothing).
        markdown: Also write the table here (e.g. ``docs/zoo.md``).
    """

    models: tuple[str, ...] = ()
    compiled: bool = False
    quick: bool = False
    fresh: bool = False
    device: str = "cpu"
    threads: int = 2
    repeats: int | None = None
    seed: int = 0
    out: str | None = "bench-results"
    markdown: str | None = None

    def __post_init__(self) -> None:
        check_run_settings(device=self.device, threads=self.threads, repeats=self.repeats, seed=self.seed)
        if self.out is None and self.markdown is not None:
            raise ValueError("a markdown file was asked for, but writing was turned off (--no-write)")

    @property
    def command(self) -> str:
        """The command line that runs (and continues) this measurement."""
        parts = ["senet", "bench", "--suite", "zoo"]
        if self.models:
            parts += ["--models", *self.models]
        parts += ["--compiled"] * self.compiled + ["--quick"] * self.quick
        defaults = ZooOptions.__dataclass_fields__
        for name in ("device", "threads", "repeats", "seed", "out", "markdown"):
            value = getattr(self, name)
            if value is not None and value != defaults[name].default:
                parts += [f"--{name}", str(value)]
        return shlex.join(parts)


@dataclass
class ZooResult:
    """What ``run_zoo`` returns.

    Attributes:
        record: The record (all its networks, including those measured by earlier runs).
        markdown: ``zoo_markdown(record)``.
        files: The files written (the record, its markdown, the extra markdown).
        measured: Measurements made by this run.
        skipped: Measurements of the selection already in the record.
    """

    record: dict[str, Any]
    markdown: str
    files: tuple[Path, ...] = ()
    measured: int = 0
    skipped: int = 0


def plan(pairs: list[ZooPair], *, compiled: bool) -> list[tuple[ZooPair, str]]:
    """The (pair, kind) measurements of ``pairs``: every eager one first, then the compiled ones if asked."""
    work = [(p, kind) for p in pairs for kind in measure.EAGER_KINDS]
    return work + ([(p, kind) for p in pairs for kind in measure.COMPILED_KINDS] if compiled else [])


def run_zoo(options: ZooOptions, *, echo: Callable[[str], None] | None = None, progress: bool = False) -> ZooResult:
    """Measures what ``options`` select, resuming ``<out>/zoo.json``, and writes ``<out>/zoo.md``.

    Args:
        options: What to measure and where.
        echo: Told what is skipped and each measurement as it finishes (e.g. ``print``).
        progress: Show a progress bar (tqdm, on stderr).

    Returns:
        The :class:`ZooResult`.

    Raises:
        ValueError: On a pattern that matches no network, or a ``zoo.json`` that is not a zoo record or
            was measured on another machine, torch, thread count or settings (before anything runs).
        OSError: If ``out`` cannot be written to (checked before anything runs).
        KeyboardInterrupt: On Ctrl-C, after writing what was finished; its ``resume_command`` continues.
    """
    say = echo or (lambda text: None)
    pairs = select_pairs(options.models)
    folder = None if options.out is None else check_writable(options.out)
    if options.markdown is not None:
        if Path(options.markdown).is_dir():
            raise ValueError(f"--markdown {options.markdown!r} is a folder; name the file, e.g. docs/zoo.md")
        check_writable(Path(options.markdown).parent)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(options.threads)  # the process-wide settings of a benchmark, undone at the end
    tune_cpu_allocator()
    try:
        device = torch.device(options.device)
        machine = machine_info(options.device)
        cfg = measure.settings(quick=options.quick, repeats=options.repeats)
        record = ZooRecord.open(None if folder is None else folder / RECORD_FILE,
                                fingerprint=fingerprint(machine, cfg, threads=options.threads), machine=machine,
                                fresh=options.fresh, echo=say)  # fmt: skip
        work = plan(pairs, compiled=options.compiled)
        todo = [(pair, kind) for pair, kind in work if not record.has(pair.name, kind)]
        result = ZooResult(record.data, "", skipped=len(work) - len(todo))
        if result.skipped:
            say(f"{result.skipped} of {len(work)} measurements already in {record.path}: skipped (--fresh redoes them)")
        own = [record.path, folder and folder / MARKDOWN_FILE, options.markdown]  # what the run writes: not code
        code, started = code_version(ignore=[f for f in own if f is not None]), _iso(time.time())
        try:
            with _bar(len(todo), progress) as bar:
                write = bar.write if bar is not None else say
                for index, (pair, kind, value) in enumerate(_measure_all(todo, cfg, device, options.seed), 1):
                    if index == 1:  # a run that measures nothing leaves the record as it was
                        record.start_run(code, started, options.command)
                    record.put(pair, kind, value, code=code["describe"], measured=_iso(time.time()))
                    result.measured += 1
                    write(f"[{index}/{len(todo)}] {pair.name}: {kind} {_summary(value)}")
                    if bar is not None:
                        bar.update()
        except KeyboardInterrupt as stopped:
            stopped.resume_command = options.command  # type: ignore[attr-defined]  # the CLI prints it
            raise
        finally:
            result.markdown = zoo_markdown(record.data, command=options.command)
            result.files = _write(record, result.markdown, folder, options.markdown)
        return result
    finally:
        torch.set_num_threads(threads_before)


def _measure_all(
    todo: list[tuple[ZooPair, str]], cfg: dict[str, Any], device: torch.device, seed: int
) -> Iterator[tuple[ZooPair, str, dict[str, Any]]]:
    """Makes the measurements in order, building a pair's two networks once for its eager (or compiled) timings."""
    built: tuple[tuple[str, bool], dict[str, nn.Module]] | None = None
    for pair, kind in todo:
        if kind == "cost":
            yield pair, kind, measure.measure_cost(pair)
            continue
        compiled = kind in measure.COMPILED_KINDS
        if built is None or built[0] != (pair.name, compiled):
            built = None  # the previous pair's networks are freed before the next ones are built
            built = ((pair.name, compiled), measure.build_pair(pair, device, seed))
        timing = measure.measure_latency if kind.startswith("latency") else measure.measure_training
        monitor = CpuMonitor().start()
        try:
            value = timing(pair, built[1], cfg, device, compiled=compiled, seed=seed)
        except Exception as e:  # noqa: BLE001 - Dynamo/Inductor failing on one network must not end the zoo
            if not compiled:
                raise  # the eager networks failing is a bug of ours: a traceback
            built = None  # whatever the failed compilation holds is freed
            value = {"batch": measure.timing_batch(pair, kind, cfg), "input_size": list(pair.input_size),
                     "failed": compile_failure(e)}  # fmt: skip
        yield pair, kind, {**value, "other_cpu_load": monitor.stop()}  # a busy machine spoils the timing


def compile_failure(error: BaseException) -> str:
    """``'InductorError: RecursionError: maximum recursion depth exceeded'``: the error's type and first line."""
    return f"{type(error).__name__}: {first_line(error)}" if str(error).strip() else type(error).__name__


def _summary(value: dict[str, Any]) -> str:
    """One line of a finished measurement: costs, or the medians and SE/plain (as the table shows it)."""
    if "failed" in value:
        return f"could not compile ({value['failed']}); recorded as failed, --fresh tries again"
    if "times" not in value:
        return ", ".join(f"{key} {value['plain'][key]:,} -> {value['se'][key]:,}" for key in ("params", "macs"))
    plain, se = (value["times"][c]["seconds"]["median"] for c in measure.CONTENDERS)
    first = value.get("first_call_seconds")
    compile_time = f"; first calls {first['plain']:.0f} s / {first['se']:.0f} s" if first else ""
    load = value.get("other_cpu_load")
    busy = f"; WARNING: other processes used {100 * load:.0f}% of the CPUs" if load is not None and load > BUSY else ""
    return (f"{1e3 * plain:.2f} / {1e3 * se:.2f} ms (SE/plain {ratio_text(value)}, batch {value['batch']})"
            f"{compile_time}{busy}")  # fmt: skip


@contextlib.contextmanager
def _bar(total: int, show: bool) -> Iterator[Any]:
    if not show:
        yield None
        return
    with tqdm(total=total, desc="zoo", unit="measurement", dynamic_ncols=True) as bar:
        yield bar


def _write(record: ZooRecord, markdown: str, folder: Path | None, extra: str | None) -> tuple[Path, ...]:
    """Writes the record and ``<folder>/zoo.md`` (and ``extra``); returns the paths written."""
    if folder is None:
        return ()
    record.save()
    files = [record.path, folder / MARKDOWN_FILE]
    atomic_write_text(files[1], markdown)
    if extra is not None:
        Path(extra).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(extra, markdown)
        files.append(Path(extra))
    return tuple(p for p in files if p is not None)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))

"""The benchmark record as markdown and JSON files: numbers beside their configuration and code version."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from .._markdown import markdown_table
from ..io import atomic_write_text
from .harness import Ratio, Stats
from .result import Check, SuiteResult, Table


def fmt_ms(stats: Stats) -> str:
    """Median milliseconds of a ``Stats`` in seconds, e.g. '12.3'."""
    return _number(stats.median * 1e3)


def fmt_ratio(ratio: Ratio | None) -> str:
    """A ratio (median of the per-round ratios) with their IQR, e.g. '1.52 (1.49-1.55)'."""
    if ratio is None:
        return "n/a"
    return f"{ratio.value:.3f} ({ratio.paired.q1:.3f}-{ratio.paired.q3:.3f})"


def fmt_bytes(n: int | None) -> str:
    """Bytes in MiB, e.g. '123.4 MiB'."""
    return "n/a" if n is None else f"{n / 2**20:,.1f} MiB"


def _number(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if x < 1 else f"{x:.2f}"


def table_markdown(table: Table) -> str:
    """One table in markdown, with its title and note."""
    lines = [f"#### {table.title}", "", markdown_table(table.columns, table.rows, [False] * len(table.columns))]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines)


def checks_table(checks: list[Check]) -> Table:
    """The targets of a suite as a table with PASS/FAIL marks."""
    rows = [[c.name, "n/a" if c.value is None else f"{c.value:.3f}", f"{c.op} {c.target:g}", c.mark, c.note]
            for c in checks]  # fmt: skip
    return Table("Targets", ["check", "measured", "target", "result", "note"], rows)


def suite_markdown(suite: SuiteResult) -> str:
    """One suite in markdown: description, configuration, tables, targets, notes."""
    config = ", ".join(f"{k}={_short(v)}" for k, v in suite.config.items())
    load = "" if suite.other_cpu_load is None else f", other processes {100 * suite.other_cpu_load:.0f}% of the CPUs"
    parts = [f"### Suite `{suite.name}` ({suite.seconds:.0f} s{load})", "", suite.description, "",
             f"Configuration: {config}"]  # fmt: skip
    for table in suite.tables:
        parts += ["", table_markdown(table)]
    if suite.checks:
        parts += ["", table_markdown(checks_table(suite.checks))]
    if suite.notes:
        parts += ["", *[f"- {note}" for note in suite.notes]]
    return "\n".join(parts)


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def _skipped(config: dict[str, Any]) -> str:
    return f"; left out by --quick: {', '.join(config['skipped'])}" if config.get("skipped") else ""


def record_markdown(record: dict[str, Any], suites: list[SuiteResult]) -> str:
    """The whole record in markdown: when, what code, which machine, then every suite."""
    machine, code = record["machine"], record["code"]
    dirty = {None: "unknown", True: "dirty", False: "clean"}[code["dirty"]]
    if code["dirty"]:
        files = code["dirty_files"]
        dirty += ": " + ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
    cuda = f", CUDA {machine['cuda_device']}" if machine.get("cuda_device") else ""
    lines = [
        f"## senet bench --suite {record['suite']}{' --quick' if record['config']['quick'] else ''}",
        "",
        f"- run: {record['started']} to {record['finished']} ({record['seconds']:.0f} s)",
        f"- code: {code['describe'] or 'no git'} (commit {code['commit'] or 'unknown'}, tree {dirty}), "
        f"senet {code['senet']}",
        f"- machine: {machine['cpu']} ({machine['cpu_count']} CPUs){cuda}; torch {machine['torch']}, "
        f"Python {machine['python']}; load average before {machine['load_average']}, "
        f"after {record.get('load_average_after')}; other processes used "
        f"{_percent(machine.get('other_cpu_load_before'))} of the CPUs just before",
        f"- settings: device {record['config']['device']}, {record['config']['threads']} threads, "
        f"dtype {record['config']['dtype']}{_skipped(record['config'])}",
        "- times are medians (ms); rounds are interleaved, so each round pairs the contenders: a ratio is the "
        "median of the per-round ratios, with their interquartile range in parentheses",
    ]
    for suite in suites:
        lines += ["", suite_markdown(suite)]
    return "\n".join(lines) + "\n"


def check_writable(out: str | os.PathLike) -> Path:
    """Creates the folder ``out`` if needed and checks that a file can be written in it (a probe, removed).

    Run before a benchmark, so that a folder that cannot take the record fails in a second, not after
    minutes of measurements.

    Returns:
        The folder.

    Raises:
        OSError: If the folder cannot be created or written to, saying why in one line.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise OSError(f"cannot write the records to {str(folder)!r}: it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".senet-write-probe-"):
            pass
    except OSError as e:
        raise OSError(f"cannot write the records to {str(folder)!r}: {e.strerror or e}") from None
    return folder


def write_record(out: str | os.PathLike, stem: str, record: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Writes ``<out>/<stem>.json`` and ``<out>/<stem>.md`` (creating ``out``); returns both paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(record, indent=1, default=_jsonable) + "\n")
    atomic_write_text(md_path, markdown)
    return json_path, md_path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)

"""What the experiments' tables share: error statistics over seeds, durations, the machine and code record,
and the error-bar plot."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..bench.environment import code_version, machine_info


def error_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Test error (percent) over the runs of one setting.

    Args:
        records: ``{'summary': ...}`` per run (``summary['test_accuracy']`` a fraction).

    Returns:
        ``errors`` (one per run), ``mean``, ``std`` (the sample standard deviation over seeds; 0 for one
        run), ``sem`` (standard error of the mean, std / sqrt(n)) and ``n``; ``mean`` is ``None`` without runs.
    """
    errors = [100.0 * (1.0 - r["summary"]["test_accuracy"]) for r in records]
    n = len(errors)
    std = statistics.stdev(errors) if n > 1 else 0.0
    return {
        "errors": errors,
        "mean": statistics.fmean(errors) if errors else None,
        "std": std,
        "sem": std / math.sqrt(n) if n else 0.0,
        "n": n,
    }


def format_error(stats: dict[str, Any], *, seeds: int) -> str:
    """'7.85 ± 0.21' (mean ± std over seeds), '7.85' for one seed, with '(2 of 3 seeds)' while runs are missing."""
    if stats["mean"] is None:
        return "not yet trained"
    text = f"{stats['mean']:.2f}" + (f" ± {stats['std']:.2f}" if stats["n"] > 1 else "")
    return text + (f" ({stats['n']} of {seeds} seeds)" if stats["n"] < seeds else "")


def format_count(value: float | None) -> str:
    """'40.73 M', '4.11 G', or 'n/a' (multiply-adds)."""
    if value is None:
        return "n/a"
    return f"{value / 1e6:,.2f} M" if value < 1e9 else f"{value / 1e9:,.2f} G"


def format_params(value: int | None) -> str:
    """'272,474' (exact: the settings of an ablation may differ by a few hundred), or 'n/a'."""
    return "n/a" if value is None else f"{value:,}"


def environment(device: str, codes: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The machine and the code version of a report (``senet.bench.environment``).

    Args:
        device: Where the runs trained.
        codes: The code version each session of the experiment ran (read when it started: the code a
            process imported, not what the checkout holds when the report is written); the last one is
            ``code``. Empty: read now.
    """
    codes = list(codes) or [code_version()]
    return {"machine": machine_info(device), "code": codes[-1], "codes": codes}


def describe_environment(env: dict[str, Any]) -> str:
    """One line: the CPU (or GPU), torch, and the code version (each session's, when they differ)."""
    machine, code = env["machine"], env["code"]
    where = machine.get("cuda_device") if str(machine.get("device", "")).startswith("cuda") else machine.get("cpu")
    cores = f", {machine['cpu_count']} CPUs" if machine.get("cpu_count") else ""
    versions = list(dict.fromkeys(c.get("describe") or c.get("senet") for c in env.get("codes") or [code]))
    version = versions[0] if len(versions) == 1 else " then ".join(versions) + " (one per session)"
    return f"{where or 'unknown machine'}{cores}; torch {machine.get('torch')}; senet {version}"


def command_lines(report: dict[str, Any]) -> list[str]:
    """The report's commands: the one that started it, and each that resumed it."""
    lines = [f"Command: `{report['command']}`"] if report.get("command") else []
    return lines + [f"Resumed with: `{c}`" for c in report.get("resumed_with", [])]


def plot_errors(rows: Sequence[tuple[str, Sequence[float]]], path: Path, *, title: str, xlabel: str) -> None:
    """Test error per setting: the mean with an error bar of one standard deviation over seeds, and
    each seed's error as a dot. ``rows`` is (label, errors in percent) per setting, in table order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 2), 4))
    for x, (_, errors) in enumerate(rows):
        if not errors:
            continue
        std = statistics.stdev(errors) if len(errors) > 1 else 0.0
        ax.errorbar([x], [statistics.fmean(errors)], yerr=[std], fmt="o", color="C0", capsize=6, markersize=7)
        ax.scatter([x] * len(errors), errors, color="C1", s=14, alpha=0.7, zorder=3)
    ax.set_xticks(range(len(rows)), [label for label, _ in rows], rotation=20 if len(rows) > 5 else 0)
    ax.set(xlabel=xlabel, ylabel="test error (%)", title=title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""What a suite hands back: its configuration, its numbers, its tables and its checks against targets.

A target is never an assertion: a :class:`Check` records the measured ratio, the target and whether
it was met, and the report marks it PASS or FAIL; the command succeeds either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_OPS = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t}


@dataclass(frozen=True)
class Check:
    """A measured value against its target.

    Attributes:
        name: What is checked, e.g. 'SE inference textbook/ours, geometric mean'.
        value: The measured value (``None`` if it could not be measured).
        op: '>=' or '<='.
        target: The target.
        note: Where the target comes from, or how to read the value.
    """

    name: str
    value: float | None
    op: str
    target: float
    note: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {', '.join(_OPS)}, got {self.op!r}")

    @property
    def passed(self) -> bool | None:
        """Whether the target is met (``None`` when there is no value)."""
        return None if self.value is None else _OPS[self.op](self.value, self.target)

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "op": self.op, "target": self.target,
                "passed": self.passed, "note": self.note}  # fmt: skip


@dataclass
class Table:
    """A table of formatted cells for the markdown report (the JSON holds the raw numbers)."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note}


@dataclass
class SuiteResult:
    """One suite's record.

    Attributes:
        name: The suite ('se', 'network', 'engine', 'cifar', 'compile').
        description: One line on what it measures.
        config: Its configuration (shapes, batch, dtype, memory format, repeats, ...).
        data: Its raw numbers (seconds, samples, ratios, bytes), JSON-ready.
        tables: The formatted tables.
        checks: The targets.
        notes: Anything a reader needs (a measurement that could not be made, a caveat).
        seconds: How long the suite took.
        other_cpu_load: The fraction of the CPUs' time other processes used while the suite ran.
    """

    name: str
    description: str
    config: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    other_cpu_load: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "config": self.config,
            "data": self.data,
            "checks": [c.to_dict() for c in self.checks],
            "tables": [t.to_dict() for t in self.tables],
            "notes": self.notes,
            "seconds": self.seconds,
            "other_cpu_load": self.other_cpu_load,
        }

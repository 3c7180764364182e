"""Renders rows of cells as aligned text, markdown, CSV or JSON, and formats counts for people."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from .._choices import FORMATS


def check_format(fmt: str) -> str:
    """Returns ``fmt`` if it is one of ``FORMATS``.

    Raises:
        ValueError: On any other format, listing the valid ones.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    return fmt


def si(value: float, digits: int = 3) -> str:
    """Formats a count with an SI suffix: 3868000000 -> '3.868G', 25557032 -> '25.557M'."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}f}{suffix}"
    return f"{value:g}"


def size(num_bytes: float) -> str:
    """Formats a byte count in binary units: 1572864 -> '1.5 MiB'."""
    for scale, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(num_bytes) >= scale:
            return f"{num_bytes / scale:.1f} {suffix}"
    return f"{int(num_bytes)} B"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    """Aligns ``rows`` under ``headers`` in columns separated by two spaces.

    Args:
        headers: The column titles.
        rows: The cells, converted with ``str``.
        right: Per column, whether to right-align it (numbers); default: all but the first.

    Returns:
        The table, a header rule under the titles, no trailing newline.
    """
    cells = [[str(c) for c in row] for row in rows]
    right = list(right) if right is not None else [False] + [True] * (len(headers) - 1)
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def csv_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Renders comma-separated values with a header line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue().rstrip("\n")


def to_json(data: Any) -> str:
    """Renders ``data`` as indented JSON."""
    return json.dumps(data, indent=2)

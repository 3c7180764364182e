"""One home for GitHub markdown tables, so that every report (profile, paper, bench) renders them alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    """Renders a GitHub markdown table (``|`` in cells escaped).

    Args:
        headers: The column titles.
        rows: The cells, row by row (``str`` is applied to each).
        right: Which columns are right-aligned; ``None``: all but the first (a label, then numbers).

    Returns:
        The table's lines, without a final newline.
    """
    right = list(right) if right is not None else [False] + [True] * (len(headers) - 1)

    def line(row: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
    return "\n".join([line(headers), rule] + [line(r) for r in rows])

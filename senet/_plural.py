"""Counts in messages: '1 epoch', '2 epochs', '1 image per class'."""

from __future__ import annotations


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``count`` and the noun it takes: ``plural(1, 'epoch')`` is '1 epoch', ``plural(3, 'epoch')`` '3 epochs'.

    Args:
        count: The number.
        singular: The noun for one.
        many: The noun for other counts (default: ``singular`` + 's').

    Returns:
        '<count> <noun>', the count with thousands separators.
    """
    return f"{count:,} {singular if count == 1 else (many or singular + 's')}"

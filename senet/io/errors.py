"""One-line errors: the reason an error gives, and the refusal of a checkpoint that would run code."""

from __future__ import annotations

import re

# Text that exporters and backends put into their messages that says nothing about the error itself.
_BOILERPLATE_TAILS = (" Please feel free to request support", "  [Caused by", " [Caused by")
_SOURCE_LOCATION = re.compile(r"^\[[^\]]*\]\s*")  # gloo's "[../third_party/gloo/...:123] " prefix
_LONG = 100  # a first line longer than this is cut at its first sentence
_LONGEST = 200


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds pickled objects other than tensors and plain containers; it was not loaded.

    Attributes:
        wanted: The global the pickle asked for (e.g. ``'posix.system'``), or ``None`` when unknown.
    """

    def __init__(self, message: str, *, wanted: str | None = None) -> None:
        super().__init__(message)
        self.wanted = wanted


def one_line(error: BaseException) -> str:
    """The reason an error gives, as one line for a one-line message.

    Its first non-empty line, without a backend's source location in front (gloo's ``[file:line]``) or an
    exporter's boilerplate behind; a line over 100 characters is cut at its first sentence, and none is
    longer than 200. An error with no message gives its type's name.

    Args:
        error: Any exception.

    Returns:
        One line, never empty.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    line = _SOURCE_LOCATION.sub("", lines[0])
    for tail in _BOILERPLATE_TAILS:
        line = line.split(tail)[0]
    line = line.strip()
    if len(line) > _LONG:
        line = line.split(". ")[0]
    return line[:_LONGEST] or type(error).__name__

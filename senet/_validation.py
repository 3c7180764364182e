"""One home for the "did you mean" of every unknown name, so that every message reads the same."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, valid: Iterable[str], *, n: int = 5, cutoff: float = 0.5) -> list[str]:
    """The valid names a user probably meant by ``name``, best first.

    Names containing ``name`` come first (``'resnet20'`` -> ``'cifar_resnet20'``, ``'se_cifar_resnet20'``;
    shortest first; letters typed for look-alike digits count as the digits: ``'resnet2O'`` contains
    ``'resnet20'``), then names that are spelled alike (``difflib``; ``'resnet5O'`` -> ``'resnet50'``).

    Args:
        name: What the user typed.
        valid: The accepted names.
        n: At most this many suggestions.
        cutoff: The ``difflib`` similarity (0..1) below which a name is not suggested.

    Returns:
        Up to ``n`` names, without repeats.
    """
    valid = list(valid)
    key = _spelled(name)
    containing = sorted((v for v in valid if key and key in _spelled(v) and v != name), key=lambda v: (len(v), v))
    alike = difflib.get_close_matches(name, valid, n=n, cutoff=cutoff)
    return list(dict.fromkeys(containing + alike))[:n]


_LOOK_ALIKE = str.maketrans({"o": "0", "l": "1", "i": "1"})


def _spelled(name: str) -> str:
    """``name`` in lower case with the letters that look like digits as those digits (both sides alike)."""
    return name.lower().translate(_LOOK_ALIKE)


def did_you_mean(name: str, valid: Iterable[str], *, n: int = 5, cutoff: float = 0.5) -> str:
    """``'; did you mean a, b?'`` for the close matches of ``name`` (see ``close_matches``), or ``''``."""
    close = close_matches(name, valid, n=n, cutoff=cutoff)
    return f"; did you mean {', '.join(close)}?" if close else ""

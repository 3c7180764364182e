"""One process at a time: an exclusive lock on a file, so that two runs never fill one cache entry at once.

The first process to take the lock decodes (or downloads) and saves; a second one waits for it, then
finds the saved copy and reuses it instead of doing the same work again. The lock is ``fcntl.flock`` on a
file beside the entry: the kernel releases it when its holder exits, even under SIGKILL, so a killed run
never leaves a stale lock behind. Where ``fcntl`` does not exist (Windows) the lock is a no-op, and the
atomic rename of :func:`senet.data.cache.save_arrays` still keeps the cache whole.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[bool]:
    """Holds an exclusive lock on the file ``path`` (created if missing) for the ``with`` block.

    Blocks until no other process holds it. The lock file itself is left in place (removing it would let
    a waiting process lock a file that a newcomer no longer sees).

    Args:
        path: The lock file, e.g. ``<entry>.lock`` beside the cache entry it guards.

    Yields:
        True when the lock is held, False when it could not be taken (no ``fcntl``, or a folder that
        cannot hold the lock file, such as a read-only cache): the caller then goes on unlocked.
    """
    if fcntl is None:
        yield False
        return
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock

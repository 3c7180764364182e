"""Writing a folder atomically: staged beside its final place under a hidden name, then renamed into place.

A reader (or a run killed at any moment) sees the old folder or the whole new one; a write that raises
leaves no staging folder behind and the old folder where it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .atomic import fsync_dir, fsync_file


@contextlib.contextmanager
def replace_folder(
    target: str | os.PathLike, *, keep_existing: bool = False, flush: bool = True, suffix: str = ""
) -> Iterator[Path]:
    """A new, empty staging folder beside ``target`` to fill; it becomes ``target`` when the block ends.

    The staging folder is ``.<name>.XXXX<suffix>`` in ``target``'s folder (a hidden name: listings of
    the folder skip it). On success its files are flushed to disk (``flush``) and it is renamed onto
    ``target``. An existing ``target`` is first renamed aside (``.<name>.replaced``) and deleted only
    once the new folder is in place (``target`` is never missing in between); with
    ``keep_existing``: then a ``target`` that exists by then (another process made it first) is kept and
    the staged copy dropped. On an error the staging folder is deleted and ``target`` is as it was.

    Args:
        target: The folder to write; its parent must exist.
        keep_existing: Keep a ``target`` that exists when the staged folder is ready (a cache filled by
            two processes at once), instead of replacing it.
        flush: Flush every staged file to disk before the rename (off for folders of many files, such as
            an extracted archive, where rewriting is cheap).
        suffix: The staging folder's name ends with this.

    Yields:
        The staging folder.
    """
    target = Path(target)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix))
    aside: Path | None = None
    try:
        yield staging
        if flush:
            for file in sorted(p for p in staging.rglob("*") if p.is_file()):
                fsync_file(file)
        if keep_existing:
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():
                    raise
                shutil.rmtree(staging)  # another process won the race; its folder is as good as ours
        else:
            if target.exists():
                aside = target.with_name(f".{target.name}.replaced")
                shutil.rmtree(aside, ignore_errors=True)
                os.rename(target, aside)
            os.rename(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if aside is not None and not target.exists():
            os.rename(aside, target)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)

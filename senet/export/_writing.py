"""The exported file: its path checked before any work, written through a temporary file and verified
before it takes the path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..io import atomic_path, check_output_file
from ._errors import _FORCE


def check_out(path: Path, force: bool) -> Path:
    """The output file, checked before any work (``senet.io.check_output_file``; the library's callers
    replace a file with ``force=True``).

    Raises:
        IsADirectoryError: If it is a folder.
        FileNotFoundError: If its folder does not exist.
        FileExistsError: If it exists and ``force`` is not set.
    """
    return check_output_file(path, force, force_option=_FORCE)


def write_verified(path: Path, force: bool, write: Callable[[Path], None], verify: Callable[[Path], None]) -> None:
    """Writes through a temporary file beside ``path``, verifies it, then moves it into place.

    A failed export or verification leaves no file at ``path`` (and an existing one untouched).
    """
    with atomic_path(path) as tmp:
        write(tmp)
        verify(tmp)
        if path.exists() and not force:  # appeared while exporting
            raise FileExistsError(f"{path} exists; add {_FORCE} to replace it")

"""Checking where a command will write, before it does any work: one message for each way it cannot."""

from __future__ import annotations

import os
from pathlib import Path


def check_output_file(path: str | os.PathLike, force: bool, *, label: str = "", force_option: str = "--force") -> Path:
    """The output file, checked before any work: not a folder, in a folder that exists, new (or ``force``).

    Args:
        path: The file to write.
        force: Whether an existing file may be replaced.
        label: What the messages call the file before its path (e.g. ``'--out '``).
        force_option: How the messages name the way to replace it (e.g. ``'--force (force=True)'`` for a
            function that the command line and the library share).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        IsADirectoryError: If it is a folder.
        FileNotFoundError: If its folder does not exist.
        FileExistsError: If it exists and ``force`` is not set.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{label}{path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {label}{path}: the folder {path.parent} does not exist")
    if path.exists() and not force:
        raise FileExistsError(f"{label}{path} exists; add {force_option} to replace it")
    return path


def check_output_folder(
    path: str | os.PathLike, force: bool, *, label: str = "", force_does: str = "to replace it"
) -> Path:
    """The output folder, checked before any work: not a file, and new or empty (or ``force``).

    Nothing is made here; the folder it would be made in need not exist yet.

    Args:
        path: The folder to write (``~`` is expanded).
        force: Whether a non-empty folder may be written.
        label: What the messages call the folder before its path (e.g. ``'--out '``).
        force_does: What ``--force`` does to a non-empty folder, for the message.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileExistsError: If it is a file, or a non-empty folder without ``force``.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{label}{path} is a file; name a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise FileExistsError(f"{label}{path} is not empty; choose another folder, or add --force {force_does}")
    return path

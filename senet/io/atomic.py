"""Writing a file atomically: through a temporary file beside it, flushed to disk, then renamed into place.

A reader (or a run killed at any moment) sees the old file or the whole new one, never a part: ``os.replace``
within one folder is atomic on POSIX and Windows. A write that raises leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside ``path`` to write; moved onto ``path`` when the block ends without error.

    The file gets the permissions of any new file (the umask applies), is flushed to disk before the rename,
    and the rename is flushed after it. On an error (or Ctrl-C) the temporary file is removed and ``path``
    is untouched.

    Args:
        path: The final file; its folder must exist.
        suffix: The temporary file's name ends with this (``.part`` for a download).

    Yields:
        The temporary file's path (it exists, empty).
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as e:  # name the file the user asked for, not the temporary one beside it
        raise type(e)(f"cannot write {path}: {(e.strerror or str(e)).lower()}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_save_tensors(
    tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Saves ``{name: tensor}`` as a safetensors file at ``path`` atomically (:func:`atomic_path`).

    The tensors are copied to the CPU and apart (safetensors refuses tensors that share storage).

    Args:
        tensors: The tensors to save (e.g. a ``state_dict``).
        path: The ``.safetensors`` file.
        metadata: String keys and values stored in the file's header, or ``None``.
    """
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(plain, str(tmp), metadata=metadata)


def fsync_file(path: str | os.PathLike) -> None:
    """Flushes a file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flushes a folder's entries (a rename is then on disk, not only in the page cache)."""
    with contextlib.suppress(OSError):  # some file systems cannot open or sync a folder
        fsync_file(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

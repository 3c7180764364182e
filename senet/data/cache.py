"""The on-disk cache: where decoded data sets and downloads live, and how files get there safely.

Everything is written under a temporary name in its final directory and renamed into place (a
rename is atomic), so a reader sees either nothing or the whole thing, even when a run is killed
mid-write or two runs fill the cache at once.

Archives are untrusted input: :func:`check_tar_member` refuses every member that could write outside
the target folder or make something other than a file or a folder (an absolute path, a ``..``
component, a symbolic or hard link, a device, a FIFO), on every Python the package supports (the
``tarfile`` 'data' filter exists only from 3.11.4 / 3.12). The archive readers apply it to every
member, and :func:`extract_archive` checks the whole archive before writing anything.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from ..io import replace_folder


def cache_dir() -> Path:
    """Returns the cache directory: ``$SENET_CACHE``, else ``$XDG_CACHE_HOME/senet``, else ``~/.cache/senet``.

    The directory is not created here; writers create it when they first need it.
    """
    if os.environ.get("SENET_CACHE"):
        return Path(os.environ["SENET_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "senet"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Returns the hex digest of a file, read in chunks (``algorithm`` is any ``hashlib`` name)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Saves named arrays as a folder of ``.npy`` files, atomically (the folder appears whole or not at all).

    ``.npy`` files load at disk speed (an ``.npz`` takes several times longer, verifying its zip
    checksums). If another process saved the same folder first, its copy is kept.

    Args:
        path: The folder to create; it must not exist yet.
        arrays: Name -> array; each becomes ``<name>.npy``. No object arrays (they would need pickle).

    Returns:
        The folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replace_folder(path, keep_existing=True, suffix=".tmp") as tmp:
        for name, array in arrays.items():
            with open(tmp / f"{name}.npy", "wb") as f:
                np.save(f, array, allow_pickle=False)
    return path


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Loads every array of a folder written by :func:`save_arrays` (no pickles allowed).

    Raises:
        FileNotFoundError: If the folder does not exist.
        ValueError: If a file is truncated or not an ``.npy`` file.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no cached arrays at {path}")
    return {f.stem: np.load(f, allow_pickle=False) for f in sorted(path.glob("*.npy"))}


def _compressed_streams() -> tuple[type, ...]:
    """The stream classes of ``tarfile``'s compressions that this Python has (bz2 and lzma are optional)."""
    found: list[type] = [gzip.GzipFile]
    for module, name in (("bz2", "BZ2File"), ("lzma", "LZMAFile")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except ImportError:
            pass
    return tuple(found)


# Streams that seek backwards by decompressing again from the start.
_COMPRESSED = _compressed_streams()


class UnsafeArchiveError(ValueError):
    """An archive holds a member that could write outside its folder or is not a file or folder."""


def check_member_name(name: str, archive: str | os.PathLike) -> None:
    """Refuses a member name that is absolute or climbs out of the target folder (``..``).

    Raises:
        UnsafeArchiveError: Naming the archive and the member.
    """
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeArchiveError(f"{archive} holds a member with an absolute path ({name!r}); refused")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise UnsafeArchiveError(f"{archive} holds a member that leaves its folder ({name!r}); refused")


def check_tar_member(member: tarfile.TarInfo, archive: str | os.PathLike) -> None:
    """Refuses a tar member that is not a plain file or folder inside the archive's folder.

    Raises:
        UnsafeArchiveError: For an absolute path, a ``..`` component, a symbolic link, a hard link, a
            character or block device, a FIFO, or any other special member (one line naming it).
    """
    check_member_name(member.name, archive)
    if member.isfile() or member.isdir():
        return
    if member.issym():
        kind = f"a symbolic link to {member.linkname!r}"
    elif member.islnk():
        kind = f"a hard link to {member.linkname!r}"
    elif member.ischr() or member.isblk():
        kind = "a device file"
    elif member.isfifo():
        kind = "a FIFO"
    else:
        kind = f"a special member (type {member.type!r})"
    raise UnsafeArchiveError(f"{archive} holds {kind} ({member.name!r}); refused: data archives hold files only")


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extracts a ``.tar`` / ``.tar.gz`` / ``.tar.bz2`` / ``.tar.xz`` into the new folder ``dest``, safely.

    Every member is checked (:func:`check_tar_member`) before anything is written: one unsafe member
    refuses the whole archive. The members are then extracted into a temporary folder beside ``dest``
    (with the 'data' filter where ``tarfile`` has it: no owners, no set-uid bits), which is renamed
    into place, so ``dest`` appears whole or not at all.

    Returns:
        ``dest``.

    Raises:
        FileNotFoundError: If ``archive`` does not exist.
        FileExistsError: If ``dest`` exists already.
        UnsafeArchiveError: If a member is unsafe (nothing is written).
        ValueError: If the archive is truncated or not a tar archive (nothing is left behind).
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive} does not exist")
    if dest.exists():
        raise FileExistsError(f"{dest} exists already; extract into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replace_folder(dest, keep_existing=True, flush=False, suffix=".tmp") as tmp, tarfile.open(archive) as tf:
            members = tf.getmembers()  # reads the whole archive: a truncated one fails here
            for member in members:
                check_tar_member(member, archive)
            read_to_end(tf)
            if hasattr(tarfile, "data_filter"):
                tf.extractall(tmp, members=members, filter="data")
            else:  # Python < 3.11.4: the checks above did the filter's work; write contents only
                _extract_plain(tf, members, tmp)
    except BaseException as e:
        if is_damaged_archive_error(e):
            raise ValueError(f"{archive} is truncated or not a tar archive ({e}); delete it and get it again") from None
        raise
    return dest


def read_to_end(tf: tarfile.TarFile) -> None:
    """Checks that a ``tarfile`` iterated to its last member saw the whole archive, and reads the rest.

    ``tarfile`` ends its iteration quietly at a header that is cut short or garbled, so an archive cut at
    a member's boundary would just lose members; and it stops at the first empty block, so a compressed
    archive cut after its last member would go unnoticed. Here a whole block must follow the last member
    (in an uncompressed archive: the end-of-archive block, 512 zero bytes; a compressed stream is not
    read twice for it, its checksum vouches for it), and the stream is read to its end (where gzip, bz2
    and xz verify their checksums).

    Raises:
        tarfile.ReadError: If the end-of-archive block is missing (or what a damaged stream raises,
            see :func:`is_damaged_archive_error`).
    """
    fileobj = tf.fileobj
    complete = fileobj.tell() >= tf.offset + tarfile.BLOCKSIZE  # tarfile read a whole block there
    if complete and not isinstance(fileobj, _COMPRESSED):  # a plain file seeks back for free
        fileobj.seek(tf.offset)
        complete = fileobj.read(tarfile.BLOCKSIZE).count(0) == tarfile.BLOCKSIZE
    if not complete:
        raise tarfile.ReadError("no end-of-archive block after its last readable member: cut short or damaged")
    while fileobj.read(1 << 20):
        pass


def is_damaged_archive_error(error: BaseException) -> bool:
    """Whether ``error`` is how ``tarfile``, ``gzip``, ``bz2`` or ``zlib`` report a damaged or truncated
    archive (rather than a failing disk, which carries an ``errno``)."""
    return isinstance(error, tarfile.TarError | EOFError | zlib.error) or (
        isinstance(error, OSError) and error.errno is None  # gzip.BadGzipFile, bz2's "Invalid data stream"
    )


def _extract_plain(tf: tarfile.TarFile, members: list[tarfile.TarInfo], root: Path) -> None:
    """Writes checked members' folders and file contents under ``root`` (default permissions, no owners)."""
    for member in members:
        target = root / member.name
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tf.extractfile(member)
        assert source is not None  # a regular file: checked above
        with source, open(target, "wb") as f:
            shutil.copyfileobj(source, f)

"""The official CIFAR-10 and CIFAR-100 python archives (Krizhevsky, 2009), read or downloaded.

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch``;
``cifar-100-python.tar.gz`` holds ``cifar-100-python/train`` and ``test``. Each is a pickled dict with
``data``, (N, 3072) uint8 rows of 1024 red, 1024 green and 1024 blue values (so a row reshapes to
(3, 32, 32)), and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100). The pickles are read with an
unpickler that only builds numpy arrays, so a tampered archive cannot run code, and the archive is read
in memory, never extracted; a member that is not a plain file or folder inside the archive's folder (a
link, a device, an absolute or ``..`` path) refuses the whole archive all the same.
"""

from __future__ import annotations

import codecs
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .cache import cache_dir, check_tar_member, is_damaged_archive_error, read_to_end
from .download import download_file

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz"
URL_ENV = "SENET_CIFAR_URL"


@dataclass(frozen=True)
class CifarArchive:
    """Where one official archive lives and how it is laid out.

    Attributes:
        filename: The archive's file name, also its name under the download address.
        md5: Its published MD5 checksum.
        folder: The folder inside the archive (and its name once extracted).
        train: The training batches, in order.
        test: The test batches.
        meta: The batch holding the class names, and the key of the names in it.
        label_key: The key of the labels in each batch.
    """

    filename: str
    md5: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: tuple[str, str]
    label_key: str


CIFAR_ARCHIVES: dict[str, CifarArchive] = {
    "cifar10": CifarArchive(
        filename="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta=("batches.meta", "label_names"),
        label_key="labels",
    ),
    "cifar100": CifarArchive(
        filename="cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        meta=("meta", "fine_label_names"),
        label_key="fine_labels",
    ),
}


def find_cifar_archive(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Returns the official archive (or its extracted folder) of ``name`` in ``data_dir``, or ``None``.

    Args:
        name: 'cifar10' or 'cifar100'.
        data_dir: The folder to look in; defaults to the cache directory.
    """
    spec = CIFAR_ARCHIVES[name]
    root = Path(data_dir if data_dir is not None else cache_dir()).expanduser()
    for candidate in (root / spec.filename, root / spec.folder):
        if candidate.exists():
            return candidate
    return None


def fetch_cifar_archive(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    url: str | None = None,
    progress: bool = True,
) -> Path:
    """Finds the official archive of ``name`` in ``data_dir``, downloading it when absent.

    Args:
        name: 'cifar10' or 'cifar100'.
        data_dir: Where the archive is or goes; defaults to the cache directory.
        download: Whether to download a missing archive.
        url: The address of the folder holding the archives; defaults to ``$SENET_CIFAR_URL``, else the
            official https://www.cs.toronto.edu/~kriz.
        progress: Whether to show a progress bar.

    Returns:
        The archive, or its extracted folder when that is what ``data_dir`` holds.

    Raises:
        FileNotFoundError: If the archive is absent and cannot (or may not) be downloaded.
        ChecksumError: If the download does not have the published MD5 (the file is deleted).
    """
    found = find_cifar_archive(name, data_dir)
    if found is not None:
        return found
    spec = CIFAR_ARCHIVES[name]
    root = Path(data_dir if data_dir is not None else cache_dir()).expanduser()
    address = f"{(url or os.environ.get(URL_ENV) or OFFICIAL_URL).rstrip('/')}/{spec.filename}"
    if not download:
        raise FileNotFoundError(f"{spec.filename} is not in {root}; download it from {address} or allow downloads")
    try:
        return download_file(address, root / spec.filename, md5=spec.md5, progress=progress)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"{e}; without a network, put {spec.filename} in {root} (--data-dir), or set {URL_ENV} to a mirror"
        ) from e


def read_cifar_archive(path: str | os.PathLike, name: str) -> dict[str, np.ndarray]:
    """Reads an official CIFAR python archive, or the folder it extracts to.

    Args:
        path: ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``, or ``cifar-10-batches-py`` /
            ``cifar-100-python``.
        name: 'cifar10' or 'cifar100'.

    Returns:
        ``train_images``/``test_images`` (N, 3, 32, 32) uint8, ``train_labels``/``test_labels`` (N,)
        int64 and ``classes`` (C,) str: the layout of :func:`senet.data.embedded_cifar10.decode_image_archive`.

    Raises:
        ValueError: If a batch is missing or malformed.
    """
    spec = CIFAR_ARCHIVES[name]
    path = Path(path)
    members = (*spec.train, *spec.test, spec.meta[0])
    if path.is_dir():
        batches = {m: _unpickle_file(path / m) for m in members}
    else:
        try:
            with tarfile.open(path) as tf:  # one pass: a gzip stream cannot seek back cheaply
                wanted = {f"{spec.folder}/{m}": m for m in members}
                batches = {}
                for member in tf:
                    check_tar_member(member, path)
                    if member.name in wanted and member.isfile():
                        batches[wanted[member.name]] = _unpickle(tf.extractfile(member), f"{path}:{member.name}")
                read_to_end(tf)
        except Exception as e:
            if not is_damaged_archive_error(e):
                raise
            raise ValueError(
                f"{path} is truncated or not a readable tar archive ({e}); delete it and download it again"
            ) from None
        missing = [m for m in members if m not in batches]
        if missing:
            raise ValueError(f"{path} has no {spec.folder}/{missing[0]}: not an official {name} archive")
    try:
        names = batches[spec.meta[0]][spec.meta[1]]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: {spec.meta[0]} has no {spec.meta[1]!r}") from e
    out: dict[str, np.ndarray] = {"classes": np.array([str(c) for c in names])}
    for split, members in (("train", spec.train), ("test", spec.test)):
        try:
            data = np.concatenate([np.asarray(batches[m]["data"], dtype=np.uint8) for m in members])
            labels = np.concatenate([np.asarray(batches[m][spec.label_key], dtype=np.int64) for m in members])
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: a {split} batch lacks 'data' or {spec.label_key!r} ({e})") from e
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
            raise ValueError(f"{path}: {split} data has shape {data.shape} for {len(labels)} labels")
        out[f"{split}_images"] = data.reshape(-1, 3, 32, 32)
        out[f"{split}_labels"] = labels
    return out


def _unpickle_file(path: Path) -> Any:
    if not path.is_file():
        raise ValueError(f"{path} is missing: the extracted folder is incomplete")
    with open(path, "rb") as f:
        return _unpickle(f, str(path))


def _unpickle(f: IO[bytes], where: str) -> Any:
    try:
        return _SafeUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"{where} is not a readable CIFAR batch ({e}); delete it and download it again") from e


class _SafeUnpickler(pickle.Unpickler):
    """Builds plain containers and numpy arrays, and refuses every other global (no code can run)."""

    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(1))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(1))[0],
        ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at pickle protocol 2
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch") from None

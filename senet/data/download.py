"""Downloading a file safely: streamed to a temporary file, checksummed, then renamed into place.

A file at its final name has therefore always passed its checksum (or was put there by the user), so
later runs trust it without hashing it again. A wrong checksum is refused and the bad file removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from ..io import atomic_path


class ChecksumError(ValueError):
    """A downloaded file does not have its published checksum (the file has been removed)."""


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Downloads ``url`` to ``dest``, verifying its checksum before the file takes its final name.

    Args:
        url: Any URL ``urllib`` opens (``https://``, ``http://``, ``file://``).
        dest: The final path; its directory is created if needed.
        md5: The expected hex MD5, or ``None``.
        sha256: The expected hex SHA-256, or a prefix of it (torchvision names its files
            ``<name>-<first 8 hex digits>.pth``), or ``None``. With neither checksum any content is accepted.
        progress: Whether to show a progress bar.
        timeout: Seconds to wait for the server before giving up.
        chunk_size: Bytes read at a time.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        ChecksumError: If the content's checksum differs; nothing is left on disk.
        FileNotFoundError: If the server cannot be reached or answers with an error.
    """
    dest = Path(dest)
    with _folders_kept_only_if_done(dest.parent):
        return _download(url, dest, md5=md5, sha256=sha256, progress=progress, timeout=timeout, chunk_size=chunk_size)


@contextlib.contextmanager
def _folders_kept_only_if_done(folder: Path) -> Iterator[None]:
    """Creates ``folder`` (and its missing parents) for a download, and removes those it created, if still empty,
    when the download fails: an offline ``senet pretrained fetch`` leaves no empty cache folder behind."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for created in missing:  # deepest first
            with contextlib.suppress(OSError):  # not empty (another process put a file there), or gone
                created.rmdir()
        raise


def _download(url: str, dest: Path, *, md5: str | None, sha256: str | None, progress: bool, timeout: float,
              chunk_size: int) -> Path:  # fmt: skip
    digests = {"MD5": hashlib.md5(usedforsecurity=False), "SHA-256": hashlib.sha256()}
    expected = {"MD5": md5, "SHA-256": sha256}
    received, size = 0, None
    with atomic_path(dest, suffix=".part") as tmp:  # takes the name ``dest`` only once its checksum is right
        try:
            with open(tmp, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
                size = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=size, desc=f"downloading {dest.name}", unit="B", unit_scale=True, disable=not progress
                ) as bar:
                    for chunk in iter(lambda: response.read(chunk_size), b""):
                        f.write(chunk)
                        received += len(chunk)
                        for name, digest in digests.items():
                            if expected[name]:
                                digest.update(chunk)
                        bar.update(len(chunk))
                if size is not None and received != size:
                    raise http.client.IncompleteRead(b"", size - received)
        except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError, timeouts, resets, cut transfers
            reason = getattr(e, "reason", None) or (
                f"the transfer stopped after {received:,} of {size:,} bytes"
                if isinstance(e, http.client.IncompleteRead) and size else e
            )
            raise FileNotFoundError(f"could not download {url} ({reason})") from e
        for name, want in expected.items():
            got = digests[name].hexdigest()
            if want and not got.startswith(want.lower()):
                raise ChecksumError(
                    f"{url} has {name} {got}, expected {want}{'...' if len(want) < len(got) else ''}: the "
                    "download is corrupt or not the published file, and was deleted; try again or use another mirror"
                )
    return dest

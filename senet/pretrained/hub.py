"""Public checkpoints on disk: downloaded once into the cache, verified, and reused.

A checkpoint goes to ``<cache>/pretrained/<file name>`` (``$SENET_CACHE``, else ``~/.cache/senet``).
The download is streamed to a temporary file and renamed into place only after its checksum matched
(``senet.data.download``), so a file at its final name is never partial. A file the user put there by
hand (an offline machine) is checked once against the published checksum; a ``<file>.sha256`` beside
it records that it passed.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from ..data.cache import cache_dir, file_digest
from ..data.download import ChecksumError, download_file
from ..io import atomic_write_text
from .schema import PretrainedWeights, cache_file_name

URL_SCHEMES = ("http", "https", "file")


def is_url(value: str | os.PathLike) -> bool:
    """Whether ``value`` is a URL this module downloads (``http://``, ``https://``, ``file://``)."""
    return isinstance(value, str) and urlparse(value).scheme in URL_SCHEMES


def pretrained_dir() -> Path:
    """Where downloaded checkpoints live: ``$SENET_PRETRAINED_DIR``, else ``<cache>/pretrained``."""
    if os.environ.get("SENET_PRETRAINED_DIR"):
        return Path(os.environ["SENET_PRETRAINED_DIR"]).expanduser()
    return cache_dir() / "pretrained"


def cached_path(url: str) -> Path:
    """The cache path of the file at ``url``: ``pretrained_dir()`` / ``schema.cache_file_name(url)`` (the name
    ``senet pretrained list`` shows)."""
    return pretrained_dir() / cache_file_name(url)


def fetch(
    url_or_weights: str | PretrainedWeights, *, sha256: str | None = None, progress: bool = True
) -> Path:
    """The local path of a checkpoint, downloading it into the cache the first time.

    Args:
        url_or_weights: A URL, or an entry of the pretrained table (its URL and checksum are used).
        sha256: The expected SHA-256 (or its leading digits) of a bare URL's file, if known.
        progress: Show a progress bar while downloading.

    Returns:
        The file in the cache.

    Raises:
        FileNotFoundError: When the file cannot be downloaded (an offline machine): one line naming the
            URL to fetch and the path to put the file at.
        ChecksumError: When the downloaded file does not have the published checksum (it is not kept),
            or a file already in the cache does not (it is left for the user to remove).
    """
    if isinstance(url_or_weights, PretrainedWeights):
        url = url_or_weights.url
        sha256 = url_or_weights.sha256 or url_or_weights.sha256_prefix
    else:
        url = url_or_weights
    dest = cached_path(url)
    if dest.is_file():
        _verify_placed(dest, sha256)
        return dest
    try:
        return download_file(url, dest, sha256=sha256, progress=progress)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"{e}; on a machine without access, download {url} elsewhere and put it at {dest}"
        ) from None


def _verify_placed(path: Path, sha256: str | None) -> None:
    """Checks a file already in the cache once against its checksum (``<file>.sha256`` records a pass)."""
    if not sha256:
        return
    stamp = path.with_name(path.name + ".sha256")
    if stamp.is_file() and stamp.read_text().strip().startswith(sha256.lower()):
        return
    digest = file_digest(path)
    if not digest.startswith(sha256.lower()):  # left in place: it may be the user's own file
        raise ChecksumError(
            f"{path} has SHA-256 {digest}, expected {sha256}...: it is not the published file; delete it "
            "(it is downloaded again) or replace it with the published one"
        )
    atomic_write_text(stamp, digest + "\n")

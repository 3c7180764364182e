"""CIFAR-10 shipped inside the package, decoded once and cached.

The archive ``senet/data/embedded/cifar10-jpeg.tar.gz`` (19.6 MB) holds the real CIFAR-10 (Krizhevsky,
2009) as one JPEG per image in image-folder layout, ``train/<class>/NNNN.jpg`` (5,000 a class) and
``test/<class>/NNNN.jpg`` (1,000 a class), re-encoded from the original pixels by a public mirror (a
pixel may differ slightly from the binary release; splits and labels are the standard ones).

Decoding its 60,000 JPEGs takes some 10 s of one core, so the decoded uint8 arrays are kept in the
cache directory (:func:`senet.data.cache.cache_dir`) as a folder of ``.npy`` files whose name carries
the archive's sha256: a changed archive gets a new entry, and later loads take a fraction of a second.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import tarfile
import warnings
import zlib
from collections import Counter
from itertools import groupby, islice
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .cache import (
    cache_dir,
    check_member_name,
    check_tar_member,
    file_digest,
    is_damaged_archive_error,
    load_arrays,
    read_to_end,
    save_arrays,
)
from .lock import exclusive_lock
from .rgb import to_rgb

log = logging.getLogger(__name__)

EMBEDDED_ARCHIVE = Path(__file__).parent / "embedded" / "cifar10-jpeg.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
_CACHE_VERSION = 1  # bump when the layout of the cached arrays changes
_KEYS = ("train_images", "train_labels", "test_images", "test_labels", "classes")


def archive_counts(path: str | os.PathLike = EMBEDDED_ARCHIVE) -> dict[str, Counter[str]]:
    """Counts the image files of a ``<split>/<class>/<file>`` tar archive without decoding any.

    Args:
        path: The archive (``.tar`` or ``.tar.gz``).

    Returns:
        ``{split: Counter({class_name: number_of_files})}``.
    """
    counts: dict[str, Counter[str]] = {}
    for name, _, _ in _tar_index(_read_archive(path), path):
        parts = PurePosixPath(name).parts
        if len(parts) == 3:
            counts.setdefault(parts[0], Counter())[parts[1]] += 1
    return counts


def _read_archive(path: str | os.PathLike) -> bytes:
    """Returns the uncompressed bytes of a ``.tar`` or ``.tar.gz`` (one ``gzip.decompress``: fast).

    Raises:
        ValueError: If the gzip stream is truncated or damaged (naming the file).
    """
    raw = Path(path).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:  # EOFError: cut short; BadGzipFile (OSError): damaged
        raise ValueError(f"{path} is truncated or damaged ({e}); delete it and get it again") from None


def _tar_index(raw: bytes, where: str | os.PathLike = "the archive") -> list[tuple[str, int, int]]:
    """Lists ``(name, data offset, size)`` of the regular files of an uncompressed tar.

    Plain ustar headers are parsed here, 15 times faster than ``tarfile`` (whose per-member work
    dominates for 60,000 small files); any other header kind (pax, GNU long names, links, devices) or
    a bad checksum hands the whole archive to ``tarfile``. Either way a member that is not a plain
    file or folder inside the archive's folder is refused (:func:`senet.data.cache.check_tar_member`).

    Raises:
        ValueError: If a member is unsafe (``UnsafeArchiveError``) or the archive is truncated.
    """
    files, offset = [], 0
    while offset + 512 <= len(raw) and raw[offset] != 0:
        header = raw[offset : offset + 512]
        kind = header[156:157]
        checksum = header[148:156].split(b"\0", 1)[0].strip()
        if (
            kind not in (b"0", b"\0", b"5")
            or not checksum
            or int(checksum, 8) != sum(header) - sum(header[148:156]) + 256
        ):
            return _tar_index_slow(raw, where)
        name = header[:100].split(b"\0", 1)[0]
        if header[257:263] == b"ustar\x00" and header[345] != 0:
            name = header[345:500].split(b"\0", 1)[0] + b"/" + name
        if name[:1] in (b"/", b"\\") or b".." in name or b":" in name[1:2]:  # rare: the full check only then
            check_member_name(name.decode("utf-8", "surrogateescape"), where)
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        if kind != b"5":
            if offset + 512 + size > len(raw):
                raise ValueError(f"{where} is truncated (its member {name.decode(errors='replace')!r} is cut short)")
            files.append((name.decode("utf-8", "surrogateescape"), offset + 512, size))
        offset += 512 + -(-size // 512) * 512
    if raw[offset : offset + 512].count(0) != 512:  # a header cut short or garbled, or no end-of-archive block
        raise ValueError(f"{where} is truncated or damaged (no end-of-archive block after byte {offset:,})")
    return files


def _tar_index_slow(raw: bytes, where: str | os.PathLike = "the archive") -> list[tuple[str, int, int]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            files = []
            for member in tf:
                check_tar_member(member, where)
                if member.isfile():
                    if member.offset_data + member.size > len(raw):
                        raise tarfile.ReadError(f"its member {member.name!r} is cut short")
                    files.append((member.name, member.offset_data, member.size))
            read_to_end(tf)
            return files
    except Exception as e:
        if not is_damaged_archive_error(e):
            raise
        raise ValueError(f"{where} is truncated or not a tar archive ({e}); delete it and get it again") from None


def decode_image_archive(
    path: str | os.PathLike,
    *,
    classes: tuple[str, ...] | None = None,
    image_size: int = 32,
    per_class: int | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Decodes a tar archive of ``<split>/<class>/<file>`` images into uint8 arrays.

    Images are ordered by split, class, then file name, whatever the order inside the archive.

    Args:
        path: The archive (``.tar`` or ``.tar.gz``), with splits ``train`` and ``test``.
        classes: The class names in label order; ``None`` takes the sorted folder names of ``train``.
        image_size: The side S every image must have.
        per_class: Decode only the first this many images of each class and split (quick checks).
        progress: Whether to show a progress bar.

    Returns:
        ``train_images``/``test_images`` (N, 3, S, S) uint8, ``train_labels``/``test_labels`` (N,) int64,
        and ``classes`` (C,) str.

    Raises:
        ValueError: If a split or a class is missing, a folder is not a known class, or an image cannot
            be decoded or has the wrong size.
    """
    raw = _read_archive(path)
    members: dict[str, list[tuple[str, str, int, int]]] = {split: [] for split in SPLITS}
    for name, offset, size in _tar_index(raw, path):
        parts = PurePosixPath(name).parts
        if len(parts) == 3 and parts[0] in members:
            members[parts[0]].append((parts[1], parts[2], offset, size))
    if classes is None:
        classes = tuple(sorted({c for c, *_ in members["train"]}))
    index = {name: i for i, name in enumerate(classes)}
    for split, items in members.items():
        if not items:
            raise ValueError(f"{path}: no images under {split}/<class>/")
        unknown = {c for c, *_ in items} - set(index)
        if unknown:
            raise ValueError(f"{path}: {split}/ holds folders that are not classes: {', '.join(sorted(unknown))}")
        items.sort(key=lambda item: (index[item[0]], item[1]))
        if per_class is not None:
            items[:] = [
                item for _, group in groupby(items, key=lambda item: item[0]) for item in islice(group, per_class)
            ]

    view = memoryview(raw)
    out: dict[str, np.ndarray] = {"classes": np.array(classes)}
    total = sum(map(len, members.values()))
    with tqdm(total=total, desc=f"decoding {Path(path).name}", unit="img", disable=not progress) as bar:
        for split, items in members.items():
            pixels = []  # (S, S, 3) RGB bytes of each image
            for i, (cls, name, offset, size) in enumerate(items):
                pixels.append(_decode(view[offset : offset + size], image_size, f"{path}:{split}/{cls}/{name}"))
                if i % 1000 == 999:
                    bar.update(1000)
            bar.update(len(items) % 1000)
            images = np.frombuffer(b"".join(pixels), np.uint8).reshape(len(items), image_size, image_size, 3)
            out[f"{split}_images"] = np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # (N, 3, S, S)
            out[f"{split}_labels"] = np.array([index[cls] for cls, *_ in items], dtype=np.int64)
    return out


def _decode(blob: memoryview, image_size: int, where: str) -> bytes:
    """Returns the RGB bytes of one S x S image."""
    if _jpeg_size(blob) == (image_size, image_size):
        # Fast path: libjpeg decodes the stream straight into an S x S image, skipping Pillow's
        # marker parsing in Python (twice as fast). Should it fail (a colour space it cannot
        # convert), the general path below decides.
        try:
            return Image.frombytes("RGB", (image_size, image_size), blob, "jpeg", "RGB", "").tobytes()
        except (OSError, ValueError):
            pass
    try:
        with Image.open(io.BytesIO(blob)) as img:
            if img.size != (image_size, image_size):  # before decoding: a header may claim any size
                raise ValueError(f"{where} is {img.width}x{img.height}, expected {image_size}x{image_size}")
            img = to_rgb(img)
            return img.tobytes()
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:  # what Pillow raises on broken files
        raise ValueError(f"cannot decode {where}: {e}") from e


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame: they give the size


def _jpeg_size(blob: memoryview) -> tuple[int, int] | None:
    """Returns a JPEG's (width, height) from its frame header, or None if it is not a readable JPEG.

    The fast decoder needs it: given the wrong size, libjpeg may fill the image without complaint.
    """
    if blob[:2] != b"\xff\xd8":
        return None
    offset = 2
    while offset + 9 <= len(blob) and blob[offset] == 0xFF:
        marker, length = blob[offset + 1], int.from_bytes(blob[offset + 2 : offset + 4], "big")
        if marker in _SOF_MARKERS:
            return int.from_bytes(blob[offset + 7 : offset + 9], "big"), int.from_bytes(
                blob[offset + 5 : offset + 7], "big"
            )
        offset += 2 + length
    return None


def load_embedded_cifar10(
    *,
    archive: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Loads the embedded CIFAR-10, decoding it only when no cached copy exists.

    Args:
        archive: The JPEG archive; defaults to the one shipped with the package.
        cache: The cache directory; defaults to :func:`senet.data.cache.cache_dir`.
        progress: Whether to show a progress bar while decoding.

    Returns:
        The arrays of :func:`decode_image_archive`: 50,000 training and 10,000 test images.
    """
    archive = Path(archive or EMBEDDED_ARCHIVE)
    if not archive.is_file():
        raise FileNotFoundError(f"the embedded CIFAR-10 archive is missing: {archive} (reinstall senet)")
    key = file_digest(archive, "sha256")[:16]
    path = Path(cache or cache_dir()) / f"{archive.name.split('.')[0]}-{key}-v{_CACHE_VERSION}"
    # One process decodes at a time; one that waited finds the other's copy and loads it.
    with exclusive_lock(path.parent / f".{path.name}.lock"):
        return _cached_or_decoded(archive, path, progress)


def _cached_or_decoded(archive: Path, path: Path, progress: bool) -> dict[str, np.ndarray]:
    """Loads the cache entry ``path`` if it is whole, else decodes ``archive`` and saves it there."""
    if path.is_dir():
        try:
            arrays = load_arrays(path)
            if set(_KEYS) <= set(arrays):
                return arrays
            problem = "incomplete"
        except (OSError, ValueError) as e:
            problem = f"unreadable ({e})"
        warnings.warn(f"the cache {path} is {problem}; decoding again", stacklevel=3)
        shutil.rmtree(path, ignore_errors=True)
    arrays = decode_image_archive(archive, classes=CIFAR10_CLASSES, progress=progress)
    try:
        save_arrays(path, arrays)
        log.info("cached the decoded CIFAR-10 in %s", path)
    except OSError as e:  # a read-only home still trains, it just decodes every time
        warnings.warn(f"could not write the cache {path} ({e}); set SENET_CACHE to a writable folder", stacklevel=3)
    return arrays

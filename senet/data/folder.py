"""Image folders, ``root/<class>/<image>``, as a standard map-style ``Dataset`` decoded in workers.

Unreadable images. The folder is scanned lazily: construction only lists files (any extension Pillow
knows, hidden files skipped), so a million-image folder opens in seconds. An image that fails to
decode is found when it is first loaded, and then:

- by default, loading raises :class:`CorruptImageError` naming the file (delete or fix it, or
  pass ``skip_corrupt=True``);
- with ``skip_corrupt=True``, a warning names the file, the sample is replaced by the next readable
  one of the folder (batches keep their size), and the file is recorded: ``corrupt_files`` and
  ``num_corrupt`` report every file found so far, across ``DataLoader`` workers (the record lives in
  shared memory).
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .rgb import to_rgb

Transform = Callable[[Image.Image, random.Random], Image.Image]
_LAYOUT = "expected <root>/<class>/<image> with one folder per class"


class CorruptImageError(ValueError):
    """An image file of an image folder cannot be decoded."""


def image_extensions() -> frozenset[str]:
    """Returns the file extensions (lower case, with the dot) of the formats this Pillow can read."""
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def require_folder(root: Path, layout: str) -> None:
    """Refuses an image folder ``root`` that is a file or does not exist, in one line ending with ``layout``.

    Raises:
        NotADirectoryError: If ``root`` is a file.
        FileNotFoundError: If ``root`` does not exist.
    """
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"image folder {root} is a file, not a folder ({layout})")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist ({layout})")


def scan_image_folder(
    root: str | os.PathLike, classes: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], list[tuple[str, int]]]:
    """Lists the images of ``root/<class>/`` without opening them.

    Args:
        root: The folder holding one sub-folder per class.
        classes: The class names in label order; ``None`` takes the sorted sub-folder names. A class
            with no folder under ``root`` is allowed (an evaluation split may lack some classes).

    Returns:
        ``(classes, samples)`` with ``samples`` a list of ``(path, label)`` sorted by label, then path.

    Raises:
        FileNotFoundError: If ``root`` is not a folder.
        ValueError: If there are no class folders, a folder is not one of ``classes``, or no images.
    """
    root = Path(root).expanduser()
    require_folder(root, _LAYOUT)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"image folder {root} has no class folders ({_LAYOUT})")
    classes = tuple(folders) if classes is None else tuple(classes)
    unknown = sorted(set(folders) - set(classes))
    if unknown:
        raise ValueError(f"{root} has folders that are not classes of the training split: {', '.join(unknown[:5])}")
    extensions = image_extensions()
    samples = []
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root / name, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            samples.extend(
                (os.path.join(dirpath, f), label)
                for f in filenames
                if not f.startswith(".") and os.path.splitext(f)[1].lower() in extensions
            )
    samples.sort(key=lambda s: (s[1], s[0]))
    if not samples:
        raise ValueError(f"image folder {root} holds no images ({_LAYOUT}; formats: any Pillow reads)")
    return classes, samples


class ImageFolder(Dataset):
    """The images of ``root/<class>/*``, decoded and transformed on each access.

    An item is ``(image, label)``: ``image`` a (3, H, W) uint8 tensor (RGB; float conversion and
    normalisation happen on the training device), ``label`` an int. The key is an index, or an
    ``(index, seed)`` pair (what :class:`senet.data.sampling.ShardedSampler` gives training loaders)
    making the random transform a function of the seed; with a plain index it draws from the global
    ``random`` generator, which ``DataLoader`` seeds in each worker.

    Args:
        root: The folder holding one sub-folder per class.
        transform: ``f(image, rng) -> image`` (e.g. :class:`senet.data.transforms.RandomResizedCropFlip`),
            given the opened image; ``None`` keeps the whole image.
        classes: The class names in label order (pass the training split's classes to a validation
            split); ``None`` takes the sorted sub-folder names.
        skip_corrupt: Replace unreadable images instead of raising (see the module's docstring).

    Raises:
        FileNotFoundError: If ``root`` is not a folder.
        ValueError: If it holds no class folders or no images.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        transform: Transform | None = None,
        classes: tuple[str, ...] | None = None,
        skip_corrupt: bool = False,
    ) -> None:
        self.root = Path(root).expanduser()
        self.classes, samples = scan_image_folder(self.root, classes)
        self.transform = transform
        self.skip_corrupt = skip_corrupt
        # Paths in one numpy bytes array rather than a list of str: a million Python objects would be
        # copied into every forked worker as their reference counts change.
        self.paths = np.array([os.fsencode(path) for path, _ in samples])
        self.targets = torch.tensor([label for _, label in samples], dtype=torch.int64)
        self._corrupt = torch.zeros(len(samples), dtype=torch.bool).share_memory_()  # seen by all workers

    def __len__(self) -> int:
        return len(self.targets)

    def path(self, index: int) -> str:
        """The file of sample ``index``."""
        return os.fsdecode(self.paths[index])

    @property
    def samples(self) -> list[tuple[str, int]]:
        """``(path, label)`` of every sample (built on demand)."""
        return [(self.path(i), label) for i, label in enumerate(self.targets.tolist())]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        rng = random.Random(seed) if seed is not None else random
        for tried in range(len(self)):
            i = (index + tried) % len(self)
            try:
                return self.load(i, rng), int(self.targets[i])
            except CorruptImageError as e:
                if not self.skip_corrupt:
                    raise
                self._corrupt[i] = True
                warnings.warn(f"{e}; using the next readable image instead", stacklevel=2)
        raise CorruptImageError(f"no image of {self.root} can be decoded")

    def load(self, index: int, rng: random.Random | None = None) -> torch.Tensor:
        """Decodes and transforms one image.

        Returns:
            (3, H, W) uint8.

        Raises:
            CorruptImageError: If the file cannot be read or decoded.
        """
        path = self.path(index)
        try:
            with Image.open(path) as img:
                out = self.transform(img, rng if rng is not None else random) if self.transform else img
                out = to_rgb(out)
                data = out.tobytes()
                width, height = out.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise CorruptImageError(
                f"cannot decode image {path}: {e} (delete or replace the file, or skip unreadable images: "
                "skip_corrupt=True, or --skip-corrupt on the command line)"
            ) from e
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1)

    @property
    def corrupt_files(self) -> list[str]:
        """The files found unreadable so far (only recorded with ``skip_corrupt=True``)."""
        return [self.path(i) for i in self._corrupt.nonzero().flatten().tolist()]

    @property
    def num_corrupt(self) -> int:
        """How many files were found unreadable so far."""
        return int(self._corrupt.sum())

    def select(self, indices: torch.Tensor | list[int]) -> ImageFolder:
        """Returns a copy holding only the samples at ``indices`` (e.g. a :func:`balanced_subset`)."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        subset = object.__new__(ImageFolder)
        subset.__dict__.update(self.__dict__)
        subset.paths, subset.targets = self.paths[indices.numpy()], self.targets[indices]
        subset._corrupt = torch.zeros(len(indices), dtype=torch.bool).share_memory_()
        return subset

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes, {self.transform!r})"

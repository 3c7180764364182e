"""One door to every data set: :func:`load_dataset` by name or path, :func:`create_loader` for batches.

- ``'cifar10'``: the official ``cifar-10-python.tar.gz`` when ``data_dir`` or the cache holds it, else
  the CIFAR-10 embedded in the package (offline, decoded once and cached; a lossy JPEG copy, see
  :mod:`senet.data.provenance`);
- ``'cifar100'``: the official ``cifar-100-python.tar.gz`` from ``data_dir``, downloaded when absent;
- a path: an image folder ``root/train/<class>/*`` and ``root/val/<class>/*`` (or ``root/test/``).

CIFAR lives in memory as uint8 tensors (``kind == 'tensor'``); an image folder stays on disk and is
decoded by ``DataLoader`` workers (``kind == 'folder'``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .._subsets import check_subset_size
from .cifar import fetch_cifar_archive, find_cifar_archive, read_cifar_archive
from .embedded_cifar10 import load_embedded_cifar10
from .folder import ImageFolder, require_folder
from .loaders import FolderLoader, TensorLoader
from .provenance import EMBEDDED_SOURCE
from .sampling import balanced_subset
from .transforms import RandomResizedCropFlip, ResizeCenterCrop

log = logging.getLogger(__name__)

# Per-channel statistics of the training pixels in [0, 1] (population std, not the often-copied 0.2023).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD)}
_FOLDER_LAYOUT = "expected <root>/train/<class>/<image> and <root>/val/<class>/<image>"


@dataclass(frozen=True, eq=False)
class TensorSplit:
    """One split of a small data set held in memory.

    Attributes:
        images: (N, 3, H, W) uint8, on the CPU until a loader moves it.
        labels: (N,) int64.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class DataSplits:
    """A loaded data set: its two splits and what a training run needs to know about it.

    Attributes:
        name: 'cifar10', 'cifar100' or the image folder's name.
        kind: 'tensor' (splits are :class:`TensorSplit`) or 'folder' (splits are :class:`ImageFolder`).
        train: The training split (possibly a class-balanced subset).
        test: The held-out split: CIFAR's test set, the image folder's ``val/``.
        classes: The class names in label order.
        mean: Per-channel mean used to normalise, in [0, 1].
        std: Per-channel standard deviation used to normalise.
        image_size: The side of the images a loader gives.
        source: Where the data came from (archive, cache file or folder), for logs.
    """

    name: str
    kind: Literal["tensor", "folder"]
    train: TensorSplit | ImageFolder
    test: TensorSplit | ImageFolder
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    source: str = field(default="")

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)

    def __str__(self) -> str:
        return (
            f"{self.name}: {len(self.train):,} training and {len(self.test):,} test images, "
            f"{self.num_classes} classes, {self.image_size}x{self.image_size} ({self.source})"
        )


def list_datasets() -> list[str]:
    """Returns the data set names :func:`load_dataset` knows (besides image-folder paths)."""
    return sorted(_STATS)


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    image_size: int = 224,
    skip_corrupt: bool = False,
    url: str | None = None,
    progress: bool = True,
) -> DataSplits:
    """Loads a data set by name, or an image folder by path.

    Args:
        name_or_path: 'cifar10', 'cifar100' (case-insensitive) or the root of an image folder.
        data_dir: Where the official CIFAR archives are (or are downloaded to); defaults to the cache
            directory. For 'cifar10' the official archive is used when ``data_dir`` or the cache directory
            holds it, else the embedded (lossy JPEG) copy.
        download: Whether a missing official archive may be downloaded.
        subset: Keep a class-balanced random subset of this many training images (quick runs).
        test_subset: Likewise for the held-out split.
        seed: Seeds the subsets' choice.
        image_size: The crop side for image folders (CIFAR is always 32).
        skip_corrupt: Image folders only: replace unreadable images instead of raising
            (see :mod:`senet.data.folder`).
        url: The address of the folder holding the official archives (default ``$SENET_CIFAR_URL``,
            else the official one).
        progress: Whether to show progress bars (first decode, download).

    Returns:
        The :class:`DataSplits`.

    Raises:
        ValueError: If the name is unknown, the subset cannot be balanced, or a folder holds no images.
        FileNotFoundError: If a folder or an archive is missing (and cannot be downloaded).
    """
    key = str(name_or_path).lower()
    if isinstance(name_or_path, str) and key in _STATS:
        data = _load_cifar(key, data_dir=data_dir, download=download, url=url, progress=progress)
    elif isinstance(name_or_path, os.PathLike) or Path(name_or_path).exists() or _looks_like_path(name_or_path):
        data = _load_folder(Path(name_or_path).expanduser(), image_size=image_size, skip_corrupt=skip_corrupt)
    else:
        raise ValueError(
            f"unknown data set {name_or_path!r}; valid names: {', '.join(list_datasets())}, or the path of an "
            f"image folder ({_FOLDER_LAYOUT})"
        )
    if subset is not None:
        data = dataclasses.replace(data, train=_subset(data.train, subset, data.num_classes, seed))
    if test_subset is not None:
        data = dataclasses.replace(data, test=_subset(data.test, test_subset, data.num_classes, seed))
    if subset is not None or test_subset is not None:
        data = dataclasses.replace(data, source=f"{data.source}; subsets {subset or 'all'}/{test_subset or 'all'}")
    return data


def _subset(split: TensorSplit | ImageFolder, size: int, num_classes: int, seed: int) -> TensorSplit | ImageFolder:
    check_subset_size(size, num_classes, len(split))
    if isinstance(split, TensorSplit):
        keep = balanced_subset(split.labels, size, num_classes=num_classes, seed=seed)
        return TensorSplit(split.images[keep], split.labels[keep])
    return split.select(balanced_subset(split.targets, size, num_classes=num_classes, seed=seed))


def create_loader(
    data: DataSplits,
    split: Literal["train", "test"],
    *,
    batch_size: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    channels_last: bool = False,
    num_workers: int = 4,
) -> TensorLoader | FolderLoader:
    """Makes the loader of one split: augmented and shuffled for 'train', plain for 'test'.

    Args:
        data: What :func:`load_dataset` returned.
        split: 'train' or 'test'.
        batch_size: Samples per batch (per rank).
        device: The training device; in-memory data sets move there whole.
        seed: Fixes the order and the augmentation of every epoch.
        rank: This process's rank (distributed training).
        world_size: The number of processes.
        drop_last: Drop a last, smaller batch.
        channels_last: Give images in the channels_last memory format.
        num_workers: Decoding processes (image folders only).

    Returns:
        A :class:`TensorLoader` or a :class:`FolderLoader`; both yield ``(images, labels)`` on ``device``.

    Raises:
        ValueError: If ``split`` is not 'train' or 'test'.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; valid: train, test")
    train, part = split == "train", getattr(data, split)
    common = dict(batch_size=batch_size, mean=data.mean, std=data.std, train=train, seed=seed, rank=rank,
                  world_size=world_size, drop_last=drop_last, channels_last=channels_last, device=device)  # fmt: skip
    if isinstance(part, TensorSplit):
        return TensorLoader(part.images, part.labels, **common)
    return FolderLoader(part, num_workers=num_workers, **common)


def _looks_like_path(name: str | os.PathLike) -> bool:
    text = str(name)
    return os.sep in text or "/" in text or text.startswith((".", "~"))


def _load_cifar(
    name: str, *, data_dir: str | os.PathLike | None, download: bool, url: str | None, progress: bool
) -> DataSplits:
    # The official archive wherever it already is (data_dir, then the cache) before the lossy embedded copy.
    archive = (find_cifar_archive(name, data_dir) if data_dir is not None else None) or find_cifar_archive(name)
    if name == "cifar10" and archive is None:
        if data_dir is not None:
            log.info("no cifar-10-python.tar.gz in %s: using the embedded CIFAR-10 (a lossy JPEG copy)", data_dir)
        arrays, source = load_embedded_cifar10(progress=progress), EMBEDDED_SOURCE
    else:
        archive = archive or fetch_cifar_archive(name, data_dir, download=download, url=url, progress=progress)
        arrays, source = read_cifar_archive(archive, name), str(archive)
    mean, std = _STATS[name]
    return DataSplits(
        name=name,
        kind="tensor",
        train=_tensor_split(arrays, "train"),
        test=_tensor_split(arrays, "test"),
        classes=tuple(str(c) for c in arrays["classes"]),
        mean=mean,
        std=std,
        image_size=32,
        source=source,
    )


def _tensor_split(arrays: dict[str, np.ndarray], split: str) -> TensorSplit:
    return TensorSplit(torch.from_numpy(arrays[f"{split}_images"]), torch.from_numpy(arrays[f"{split}_labels"]))


def _load_folder(root: Path, *, image_size: int, skip_corrupt: bool) -> DataSplits:
    require_folder(root, _FOLDER_LAYOUT)
    evaluation = next((root / s for s in ("val", "test") if (root / s).is_dir()), None)
    if not (root / "train").is_dir() or evaluation is None:
        missing = "train/" if not (root / "train").is_dir() else "val/"
        raise FileNotFoundError(f"image folder {root} has no {missing} folder ({_FOLDER_LAYOUT})")
    train = ImageFolder(root / "train", transform=RandomResizedCropFlip(image_size), skip_corrupt=skip_corrupt)
    test = ImageFolder(
        evaluation, transform=ResizeCenterCrop(image_size), classes=train.classes, skip_corrupt=skip_corrupt
    )
    return DataSplits(
        name=root.name,
        kind="folder",
        train=train,
        test=test,
        classes=train.classes,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        image_size=image_size,
        source=str(root),
    )

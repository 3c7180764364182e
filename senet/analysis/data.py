"""The images an analysis runs on: N per class of a held-out split, preprocessed as the model expects.

The paper records 50 images per class (Fig. 6). Images are chosen class-balanced at random
(``senet.data.balanced_subset``), never as the first N of a split: CIFAR's arrays are sorted by class.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._plural import plural
from ..data import ImageFolder, ResizeCenterCrop, TensorSplit, balanced_subset, list_datasets, load_dataset, normalize
from ..data.loaders import worker_batches
from ..pretrained import imagenet_classes

_WNID = re.compile(r"n\d{8}")


@dataclass(frozen=True, eq=False)
class AnalysisData:
    """The chosen images and how to feed them to the model.

    Attributes:
        split: The images (in memory, or an image folder decoded on access), labels in [0, K).
        classes: The K class names in label order.
        mean: Per-channel mean of the model's input normalisation, in [0, 1].
        std: Per-channel standard deviation.
        bgr: Feed the channels in BGR order (Caffe checkpoints).
        description: One line for logs and the summary.
    """

    split: TensorSplit | ImageFolder
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bgr: bool = False
    description: str = ""

    def __len__(self) -> int:
        return len(self.split)

    @property
    def labels(self) -> Tensor:
        """(N,) int64 labels."""
        return self.split.labels if isinstance(self.split, TensorSplit) else self.split.targets

    def batches(self, batch_size: int, device: torch.device, *, workers: int = 2) -> Iterator[tuple[Tensor, Tensor]]:
        """Yields ``(images, labels)`` on ``device``, images normalised float32 (N, 3, H, W).

        Args:
            batch_size: Images per batch.
            device: Where the model runs.
            workers: Decoding processes for image folders.
        """
        mean, std = torch.tensor(self.mean), torch.tensor(self.std)
        if isinstance(self.split, TensorSplit):
            parts = ((self.split.images[i : i + batch_size], self.split.labels[i : i + batch_size])
                     for i in range(0, len(self.split), batch_size))  # fmt: skip
        else:
            parts = torch.utils.data.DataLoader(self.split, batch_size=batch_size, num_workers=workers)
        for images, labels in worker_batches(parts):
            images = images.to(device, non_blocking=True)
            images = images.flip(1) if self.bgr else images  # the file's RGB -> the network's BGR
            yield normalize(images, mean, std), labels.to(device, non_blocking=True)


def per_class_subset(data: AnalysisData, count: int, *, seed: int = 0) -> AnalysisData:
    """Keeps ``count`` images of each class, chosen at random (class-balanced).

    Raises:
        ValueError: If ``count`` is not positive or a class has fewer images.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"--per-class must be a positive number of images, got {count!r}")
    have = torch.bincount(data.labels, minlength=len(data.classes))
    if int(have.min()) < count:
        k = int(have.argmin())  # the class that sets the limit
        raise ValueError(f"--per-class {count}: class {data.classes[k]!r} has only {plural(int(have[k]), 'image')} "
                         f"here, the fewest of any class; ask for at most {int(have[k])}")  # fmt: skip
    keep = balanced_subset(data.labels, count * len(data.classes), num_classes=len(data.classes), seed=seed)
    return _select(data, keep, f"{data.description}, {plural(count, 'image')} per class")


def balanced_part(data: AnalysisData, total: int, *, seed: int = 0) -> AnalysisData:
    """A class-balanced subset of ``total`` images (``senet.data.balanced_subset``); all of them if ``total``
    is at least their number."""
    if total >= len(data):
        return data
    keep = balanced_subset(data.labels, total, num_classes=len(data.classes), seed=seed)
    return _select(data, keep, f"{data.description}, a class-balanced subset of {total:,}")


def _select(data: AnalysisData, keep: Tensor, description: str) -> AnalysisData:
    split = data.split
    if isinstance(split, TensorSplit):
        chosen: TensorSplit | ImageFolder = TensorSplit(split.images[keep], split.labels[keep])
    else:
        chosen = split.select(keep)
    return dataclasses.replace(data, split=chosen, description=description)


def run_data(dataset: str, *, data_dir: str | None, image_size: int, skip_corrupt: bool = False) -> AnalysisData:
    """The held-out split of a training run's data set, normalised as the run trained.

    Args:
        dataset: 'cifar10', 'cifar100' or an image folder with train/ and val/ (``load_dataset``).
        data_dir: Where official CIFAR archives are.
        image_size: The run's crop size (image folders).
        skip_corrupt: Replace unreadable images instead of stopping.
    """
    data = load_dataset(dataset, data_dir=data_dir, image_size=image_size, skip_corrupt=skip_corrupt, progress=False)
    return AnalysisData(data.test, data.classes, data.mean, data.std,
                        description=f"{data.name} held-out split ({len(data.test):,} images)")  # fmt: skip


def model_data(
    dataset: str | os.PathLike, preprocessing: dict[str, Any], *, data_dir: str | None = None
) -> AnalysisData:
    """Images for a model with its own preprocessing (``senet.data_config``), e.g. a public checkpoint.

    Args:
        dataset: 'cifar10' or 'cifar100' (the test split, at 32 px), or an image folder: one with
            train/ and val/ (or test/) sub-folders gives its val/; otherwise the folder itself holds one
            sub-folder per class (an ImageNet ``val/<wnid>/`` folder: classes are then named by ImageNet's
            names).
        preprocessing: The model's ``data_config``: resize, interpolation, crop, mean, std, channel order.
        data_dir: Where official CIFAR archives are.

    Raises:
        FileNotFoundError: If the folder does not exist.
        ValueError: On an unknown data set name or a folder without images.
    """
    mean, std = tuple(preprocessing["mean"]), tuple(preprocessing["std"])
    bgr = preprocessing.get("channel_order", "RGB") == "BGR"
    if isinstance(dataset, str) and dataset.lower() in list_datasets():
        data = load_dataset(dataset.lower(), data_dir=data_dir, progress=False)
        return AnalysisData(data.test, data.classes, mean, std, bgr, f"{data.name} test split")
    root = Path(dataset).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"data set {str(dataset)!r} is neither {' nor '.join(list_datasets())} nor an image folder"
        )
    evaluation = next((root / s for s in ("val", "test") if (root / s).is_dir()), None)
    if evaluation is not None and (root / "train").is_dir():
        root = evaluation
    size = preprocessing["input_size"][-1]
    transform = ResizeCenterCrop(
        size, resize=preprocessing.get("resize"), interpolation=preprocessing.get("interpolation", "bilinear"),
        draft=False,
    )  # fmt: skip
    folder = ImageFolder(root, transform=transform)
    return AnalysisData(folder, _readable(folder.classes), mean, std, bgr, f"image folder {root}")


def _readable(classes: tuple[str, ...]) -> tuple[str, ...]:
    """ImageNet wnids become their names ('n01443537' -> 'goldfish'); other names stay."""
    if not all(_WNID.fullmatch(c) for c in classes):
        return classes
    names = {wnid: name.split(",")[0].strip() for wnid, name in imagenet_classes()}
    return tuple(names.get(c, c) for c in classes)

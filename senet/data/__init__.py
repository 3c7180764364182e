"""Data for training: CIFAR in memory with on-device batch augmentation, image folders with workers.

    >>> from senet.data import load_dataset, create_loader
    >>> data = load_dataset("cifar10")                  # embedded, offline; decoded once, then cached
    >>> loader = create_loader(data, "train", batch_size=128, device="cuda", seed=0)
    >>> for images, labels in loader: ...               # (128, 3, 32, 32) float32, (128,) int64

Importing this package does no work; the first :func:`load_dataset` of CIFAR-10 decodes and caches.
"""

from .._subsets import check_named_subsets, check_subset_size, named_num_classes, named_sizes
from .augment import crop_flip, crop_flip_params, normalize
from .cache import cache_dir
from .cifar import CIFAR_ARCHIVES, fetch_cifar_archive, read_cifar_archive
from .datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataSplits,
    TensorSplit,
    create_loader,
    list_datasets,
    load_dataset,
)
from .download import ChecksumError, download_file
from .embedded_cifar10 import CIFAR10_CLASSES, EMBEDDED_ARCHIVE, archive_counts, load_embedded_cifar10
from .folder import CorruptImageError, ImageFolder
from .loaders import FolderLoader, TensorLoader
from .sampling import ShardedSampler, balanced_subset, epoch_order
from .transforms import RandomResizedCropFlip, ResizeCenterCrop

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR_ARCHIVES",
    "EMBEDDED_ARCHIVE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ChecksumError",
    "CorruptImageError",
    "DataSplits",
    "FolderLoader",
    "ImageFolder",
    "RandomResizedCropFlip",
    "ResizeCenterCrop",
    "ShardedSampler",
    "TensorLoader",
    "TensorSplit",
    "archive_counts",
    "balanced_subset",
    "cache_dir",
    "check_named_subsets",
    "check_subset_size",
    "create_loader",
    "crop_flip",
    "crop_flip_params",
    "download_file",
    "epoch_order",
    "fetch_cifar_archive",
    "list_datasets",
    "load_dataset",
    "load_embedded_cifar10",
    "named_num_classes",
    "named_sizes",
    "normalize",
    "read_cifar_archive",
]

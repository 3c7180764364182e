"""What is known of the named data sets without their files, and the rule of class-balanced subsets.

Torch-free: ``TrainConfig`` checks the options with it while the command line parses (before torch is
imported), so a subset that cannot be drawn, or a model of another class count, is refused before an
archive is read or downloaded.
"""

from __future__ import annotations

import os

_SIZES = {"cifar10": (10, 50_000, 10_000), "cifar100": (100, 50_000, 10_000)}  # classes, training, held-out


def named_sizes(name: str | os.PathLike) -> tuple[int, int, int] | None:
    """(classes, training images, held-out images) of a named data set, known without its files (so that a
    model of another class count, or a subset that cannot be drawn, is refused before an archive is read or
    downloaded); ``None`` for an image folder (its files say).

    Args:
        name: A name of :func:`list_datasets` (case-insensitive) or a folder's path.
    """
    return _SIZES.get(str(name).lower()) if isinstance(name, str) else None


def named_num_classes(name: str | os.PathLike) -> int | None:
    """The class count of a named data set (:func:`named_sizes`); ``None`` for an image folder."""
    sizes = named_sizes(name)
    return sizes[0] if sizes is not None else None


def check_named_subsets(name: str | os.PathLike, subset: int | None, test_subset: int | None) -> None:
    """Checks ``--subset`` and ``--test-subset`` against a named data set, before it is read.

    Raises:
        ValueError: Naming the option, if a class-balanced subset of that size cannot be drawn.
    """
    sizes = named_sizes(name)
    if sizes is None:
        return
    for option, size, available in (("--subset", subset, sizes[1]), ("--test-subset", test_subset, sizes[2])):
        if size is not None and size > 0:
            try:
                check_subset_size(size, sizes[0], available)
            except ValueError as e:
                raise ValueError(f"{option} {size}: {e} ({str(name).lower()})") from None


def check_subset_size(size: int, num_classes: int, available: int | None = None) -> None:
    """Whether a class-balanced subset of ``size`` images can be drawn (the rule of ``load_dataset``'s subsets).

    Args:
        size: The images asked for.
        num_classes: The data set's classes: the subset holds at least one of each.
        available: The images of the split, when known.

    Raises:
        ValueError: If ``size`` is fewer than the classes or more than the images available.
    """
    if size < num_classes:
        raise ValueError(
            f"a class-balanced subset of {size} images cannot hold one image of each of the {num_classes} classes"
        )
    if available is not None and size > available:
        raise ValueError(f"a subset of {size:,} images is more than the {available:,} the split holds")

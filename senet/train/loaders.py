"""The data of a run: ``senet.data`` loaders built from a ``TrainConfig``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data import create_loader, load_dataset
from ..factory import ARCHITECTURE, NORMALIZATION
from .config import TrainConfig


@dataclass
class DataBundle:
    """The loaders of a run and what the model needs to know about the data.

    Attributes:
        train: The training loader (``None`` when only evaluating).
        test: The evaluation loader.
        num_classes: Number of classes.
        classes: Class names in label order.
        input_size: (C, H, W) of one image.
        description: One line for logs.
        source: Where the data came from (``DataSplits.source``: the archive, the embedded copy, the folder).
        train_images: The training images there are (after ``--subset``); 0 when only evaluating.
        epoch_images: The training images an epoch uses (all processes together): fewer than
            ``train_images`` when the last partial batch is dropped.
    """

    train: Any
    test: Any
    num_classes: int
    classes: list[str]
    input_size: tuple[int, int, int]
    description: str
    source: str = ""
    train_images: int = 0
    epoch_images: int = 0


def build_data(
    cfg: TrainConfig, device: torch.device, *, rank: int = 0, world_size: int = 1, train: bool = True
) -> DataBundle:
    """Loads ``cfg.dataset`` and makes its loaders (sharded by ``rank`` in a distributed run).

    The training order and augmentation of each epoch depend only on ``(cfg.data_order_seed, epoch)``,
    so runs that share the seed see the same batches, and a resumed run continues the same sequence.

    Raises:
        ValueError: On an unknown data set or an impossible subset.
        FileNotFoundError: If the data cannot be found.
    """
    data = load_dataset(
        cfg.dataset,
        data_dir=cfg.data_dir,
        subset=cfg.subset if train else None,
        test_subset=cfg.test_subset,
        seed=cfg.data_order_seed,
        image_size=cfg.image_size,
        skip_corrupt=cfg.skip_corrupt,
        progress=cfg.progress and rank == 0,
    )
    common = dict(
        device=device, rank=rank, world_size=world_size, channels_last=cfg.channels_last, num_workers=cfg.workers
    )
    train_loader, epoch_images = None, 0
    if train:
        # Dropping the last partial batch keeps BatchNorm away from tiny batches and ranks in lockstep.
        drop_last = len(data.train) // world_size >= cfg.batch_size
        train_loader = create_loader(
            data, "train", batch_size=cfg.batch_size, seed=cfg.data_order_seed, drop_last=drop_last, **common
        )
        if len(train_loader) == 0:
            raise ValueError(f"{cfg.dataset} gives no training batch of {cfg.batch_size}; lower --batch-size")
        epoch_images = len(train_loader) * cfg.batch_size * world_size if drop_last else len(data.train)
    test_loader = create_loader(data, "test", batch_size=max(cfg.batch_size, 256), **common)
    return DataBundle(
        train=train_loader,
        test=test_loader,
        num_classes=data.num_classes,
        classes=list(data.classes),
        input_size=(3, data.image_size, data.image_size),
        description=str(data),
        source=data.source,
        train_images=len(data.train) if train else 0,
        epoch_images=epoch_images,
    )



def normalize_as_recorded(data: DataBundle, cfg: TrainConfig) -> None:
    """Makes both loaders of ``data`` normalise as the weights a run fine-tunes were trained
    (``cfg.extra[ARCHITECTURE][NORMALIZATION]``, recorded by ``--init-from``) instead of with the data set's
    own statistics; nothing changes for a run without that record."""
    kept = (cfg.extra.get(ARCHITECTURE) or {}).get(NORMALIZATION)
    if kept is not None:
        normalize_as(data, kept["mean"], kept["std"])


def normalize_as(data: DataBundle, mean: Sequence[float], std: Sequence[float]) -> None:
    """Makes both loaders of ``data`` normalise with ``mean``/``std``."""
    for loader in (data.train, data.test):
        if loader is not None:
            loader.mean = torch.as_tensor(mean, dtype=torch.float32, device=loader.mean.device)
            loader.std = torch.as_tensor(std, dtype=torch.float32, device=loader.std.device)

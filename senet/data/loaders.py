"""Batch loaders with one contract: iterate for ``(images, labels)`` on the training device.

``images`` are normalised float32 (B, 3, H, W) (channels_last on request), ``labels`` int64 (B,).
Both loaders have ``len()`` (batches per epoch on this rank), ``set_epoch(e)`` and advance their
epoch after each pass; the order, the shard and the augmentation of epoch ``e`` depend only on
``(seed, e)`` (see :mod:`senet.data.sampling`). ``set_epoch(e, start_batch=k)`` makes the next pass
resume epoch ``e`` after its first ``k`` batches: the same batches, augmented alike, as the rest of an
uninterrupted pass, without loading the skipped ones.

- :class:`TensorLoader` serves a small data set held in memory as one uint8 tensor on the device,
  augmented a whole batch at a time (:mod:`senet.data.augment`); no workers.
- :class:`FolderLoader` wraps a ``DataLoader`` over an :class:`ImageFolder` whose workers decode and
  crop uint8 images; they are normalised on the device (a quarter of the bytes to copy).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from .augment import crop_flip, crop_flip_params, normalize
from .folder import ImageFolder
from .sampling import ShardedSampler, epoch_generator, shard_positions

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorLoader:
    """Batches of an in-memory uint8 data set, augmented on its device.

    With ``augment``, each sample is zero-padded by ``padding``, randomly cropped back to its size and
    flipped with probability 1/2; then every batch is normalised with ``mean``/``std``.

    Args:
        images: (N, C, H, W) uint8; moved to ``device`` once.
        labels: (N,) int64.
        batch_size: Samples per batch (per rank).
        mean: (C,) per-channel mean in [0, 1].
        std: (C,) per-channel standard deviation in [0, 1].
        train: Training defaults: shuffle, augment, equal shards. Otherwise the data set's order, no
            augmentation, and shards that cover every sample once.
        augment: Overrides ``train`` for the augmentation.
        seed: Fixes the order and augmentation of every epoch.
        padding: The zero padding p of the random crop.
        flip: Whether the augmentation flips.
        drop_last: Drop a last, smaller batch.
        channels_last: Give images in the channels_last memory format.
        rank: This process's rank (distributed training).
        world_size: The number of processes.
        device: Where the data, the augmentation and the batches live; ``None`` keeps ``images``' device.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = True,
        augment: bool | None = None,
        seed: int = 0,
        padding: int = 4,
        flip: bool = True,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
            raise ValueError(f"need (N, C, H, W) uint8 images and N labels, got {images.dtype} {tuple(images.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.augment = train if augment is None else augment
        self.padding, self.flip, self.drop_last, self.channels_last = padding, flip, drop_last, channels_last
        self.rank, self.world_size = rank, world_size
        self.positions = shard_positions(len(images), rank=rank, world_size=world_size, drop_tail=train)
        self.epoch, self.start_batch = 0, 0

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch."""
        return len(self.positions)

    def __len__(self) -> int:
        return self.num_samples // self.batch_size if self.drop_last else math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Sets the epoch the next pass uses, and the batch it begins at (resuming part-way).

        Raises:
            ValueError: If ``start_batch`` is outside ``[0, len(self)]``.
        """
        _check_start(start_batch, len(self))
        self.epoch, self.start_batch = epoch, start_batch

    def plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Returns this rank's indices, crop offsets and flips for ``epoch`` (CPU tensors).

        The permutation and the augmentation parameters are drawn for all N positions of the epoch
        from one generator seeded by ``(seed, epoch)``, then sharded: every rank agrees on them.

        Returns:
            ``indices`` (n,) int64, ``offsets`` (n, 2) int64 and ``flips`` (n,) bool; the last two are
            ``None`` without augmentation.
        """
        n = len(self.images)
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=generator) if self.train else torch.arange(n)
        if not self.augment:
            return order[self.positions], None, None
        offsets, flips = crop_flip_params(n, padding=self.padding, flip=self.flip, generator=generator)
        return order[self.positions], offsets[self.positions], flips[self.positions]

    def __iter__(self) -> Iterator[Batch]:
        epoch, start_batch = self.epoch, self.start_batch
        self.epoch, self.start_batch = epoch + 1, 0
        return self.iter_epoch(epoch, start_batch)

    def iter_epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Iterates over the batches of ``epoch`` from ``start_batch`` on (to resume mid-epoch)."""
        _check_start(start_batch, len(self))
        indices, offsets, flips = self.plan(epoch)
        indices = indices.to(self.device, non_blocking=True)
        if offsets is not None:
            offsets, flips = offsets.to(self.device, non_blocking=True), flips.to(self.device, non_blocking=True)
        bs = self.batch_size
        for start in range(start_batch * bs, len(self) * bs, bs):
            idx = indices[start : start + bs]
            images = self.images.index_select(0, idx)  # (B, C, H, W) uint8
            if offsets is not None:
                images = crop_flip(images, offsets[start : start + bs], flips[start : start + bs], padding=self.padding)
            yield normalize(images, self.mean, self.std, channels_last=self.channels_last), self.labels[idx]


class FolderLoader:
    """Batches of an :class:`ImageFolder` decoded by ``DataLoader`` workers, normalised on the device.

    In training the sampler gives each sample a seed drawn from ``(seed, epoch)``, so the random crops
    too are reproducible, whatever the number of workers.

    Args:
        dataset: The image folder, with its transform.
        batch_size: Samples per batch (per rank).
        mean: (3,) per-channel mean in [0, 1].
        std: (3,) per-channel standard deviation in [0, 1].
        train: Shuffle and give equal shards (training), or keep the order and cover every sample.
        seed: Fixes the order and augmentation of every epoch.
        num_workers: Decoding processes.
        drop_last: Drop a last, smaller batch.
        channels_last: Give images in the channels_last memory format.
        rank: This process's rank.
        world_size: The number of processes.
        device: Where batches go (pinned memory and asynchronous copies on CUDA).
    """

    def __init__(
        self,
        dataset: ImageFolder,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = True,
        seed: int = 0,
        num_workers: int = 4,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.dataset, self.train, self.channels_last, self.batch_size = dataset, train, channels_last, batch_size
        self.device = torch.device(device)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        self.sampler = _SeededSampler(len(dataset), shuffle=train, seed=seed, rank=rank, world_size=world_size)
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=drop_last,
            persistent_workers=num_workers > 0,  # safe: the sampler, not the workers, carries the randomness
            # A generator of its own: each pass draws the workers' base seed from it, which would otherwise
            # consume the global torch RNG (dropout's), once per pass without workers and once per run with
            # persistent ones, so that a resumed run would draw other dropout masks than an uninterrupted one.
            generator=torch.Generator().manual_seed(seed),
        )

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch."""
        return len(self.sampler)

    @property
    def epoch(self) -> int:
        """The epoch the next pass uses."""
        return self.sampler.epoch

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Sets the epoch the next pass uses, and the batch it begins at (resuming part-way: the sampler
        starts after the skipped batches' samples, which are never decoded).

        Raises:
            ValueError: If ``start_batch`` is outside ``[0, len(self)]``.
        """
        _check_start(start_batch, len(self))
        self.sampler.set_epoch(epoch, start=min(start_batch * self.batch_size, len(self.sampler)))

    def iter_epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Iterates over the batches of ``epoch`` from ``start_batch`` on (to resume mid-epoch)."""
        self.set_epoch(epoch, start_batch)
        return iter(self)

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in worker_batches(self.loader):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            yield normalize(images, self.mean, self.std, channels_last=self.channels_last), labels


def _check_start(start_batch: int, batches: int) -> None:
    if not 0 <= start_batch <= batches:
        raise ValueError(f"start_batch must be in [0, {batches}] (the batches of an epoch), got {start_batch}")


def worker_batches(loader: Iterable[Batch]) -> Iterator[Batch]:
    """The batches of ``loader``; an error raised in a ``DataLoader`` worker arrives with its own message
    (``worker_message``), not with the worker's whole traceback inside it."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (ValueError, OSError) as e:
            raise type(e)(worker_message(e)) from None
        yield batch


def worker_message(error: BaseException) -> str:
    """The original message of an error re-raised from a ``DataLoader`` worker (whose message holds the
    worker's whole traceback); other errors' messages unchanged."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    name, sep, message = last.partition(": ")
    return message if sep and " " not in name else last


class _SeededSampler(ShardedSampler):
    """A :class:`ShardedSampler` that, when shuffling, pairs each index with a per-sample seed."""

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        epoch, start = self.epoch, self.start
        indices = list(super().__iter__())  # from position ``start`` of the epoch's order on
        if not self.shuffle:
            return iter(indices)
        generator = epoch_generator(self.seed, epoch, stream=1)  # independent of the order's stream
        seeds = torch.randint(0, 2**62, (self.num_samples,), generator=generator)
        seeds = seeds[shard_positions(self.num_samples, rank=self.rank, world_size=self.world_size)][start:].tolist()
        return zip(indices, seeds, strict=True)

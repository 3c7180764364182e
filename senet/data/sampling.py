"""Which samples, in which order: seeded epoch permutations, shards for distributed training, subsets.

The order of epoch ``e`` is a function of ``(seed, e)`` alone (a fresh CPU ``torch.Generator`` per
epoch), so a resumed run sees the very order it would have seen, on any device and world size.
Training shards are equal-size and disjoint: each epoch drops the last ``N % world_size`` positions of
its permutation (different samples every epoch). Evaluation shards cover every sample exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """Returns a CPU generator seeded from ``(seed, epoch, stream)`` (mixed by numpy's ``SeedSequence``).

    Args:
        seed: The run's seed.
        epoch: The epoch number.
        stream: Tells apart independent streams of one epoch (0 draws the order).

    Raises:
        ValueError: If an argument is negative.
    """
    if min(seed, epoch, stream) < 0:
        raise ValueError(f"seed, epoch and stream must be >= 0, got {seed}, {epoch}, {stream}")
    state = int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(state >> 1)  # 63 bits: manual_seed wants an int64


def shard_positions(num_samples: int, *, rank: int = 0, world_size: int = 1, drop_tail: bool = True) -> torch.Tensor:
    """Returns the positions of an epoch's order that belong to one rank.

    Args:
        num_samples: The length N of the epoch's order.
        rank: This process's rank, in ``[0, world_size)``.
        world_size: The number of processes.
        drop_tail: Drop the last ``N % world_size`` positions so every rank gets ``N // world_size``
            (training); otherwise ranks differ by at most one and every position is covered (evaluation).

    Returns:
        (n,) int64 positions ``rank, rank + world_size, ...``.

    Raises:
        ValueError: If ``rank`` or ``world_size`` is out of range.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    end = num_samples - num_samples % world_size if drop_tail else num_samples
    return torch.arange(rank, end, world_size)


def epoch_order(
    num_samples: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
    drop_tail: bool = True,
) -> torch.Tensor:
    """Returns the sample indices one rank visits in one epoch.

    Args:
        num_samples: The size N of the data set.
        seed: The run's seed.
        epoch: The epoch number; with ``seed`` it fixes the order.
        shuffle: Permute (training) or keep the data set's order (evaluation).
        rank: This process's rank.
        world_size: The number of processes.
        drop_tail: See :func:`shard_positions`.

    Returns:
        (n,) int64 indices into the data set.
    """
    order = (
        torch.randperm(num_samples, generator=epoch_generator(seed, epoch)) if shuffle else torch.arange(num_samples)
    )
    return order[shard_positions(num_samples, rank=rank, world_size=world_size, drop_tail=drop_tail)]


class ShardedSampler(Sampler[int]):
    """A ``DataLoader`` sampler yielding :func:`epoch_order`; the epoch advances after each pass.

    ``set_epoch(e)`` before iterating (when resuming) picks the epoch; afterwards each pass over the
    sampler moves to the next one, so forgetting ``set_epoch`` does not repeat an order.
    ``set_epoch(e, start=k)`` makes the next pass begin at position ``k`` of the epoch's order (resuming
    part-way through an epoch: the skipped samples are never yielded, so never loaded); ``len()`` stays
    the whole epoch's.

    Args:
        num_samples: The size of the data set.
        shuffle: Permute each epoch (training) or keep the order (evaluation).
        seed: The run's seed.
        rank: This process's rank.
        world_size: The number of processes.
        drop_tail: Equal shards (training); ``None`` means ``shuffle``.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_tail: bool | None = None,
    ) -> None:
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.drop_tail = shuffle if drop_tail is None else drop_tail
        self.epoch, self.start = 0, 0
        self._len = len(shard_positions(num_samples, rank=rank, world_size=world_size, drop_tail=self.drop_tail))

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Sets the epoch the next pass uses, and the position in its order it begins at.

        Raises:
            ValueError: If ``start`` is outside ``[0, len(self)]``.
        """
        if not 0 <= start <= self._len:
            raise ValueError(f"start must be in [0, {self._len}] (the samples of an epoch), got {start}")
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self._len

    def _next_pass(self) -> tuple[int, int]:
        """The (epoch, start) of the pass beginning now; the next pass is the next epoch, from its start."""
        epoch, start = self.epoch, self.start
        self.epoch, self.start = epoch + 1, 0
        return epoch, start

    def __iter__(self) -> Iterator[int]:
        epoch, start = self._next_pass()
        order = epoch_order(
            self.num_samples,
            seed=self.seed,
            epoch=epoch,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
            drop_tail=self.drop_tail,
        )
        return iter(order[start:].tolist())


def balanced_subset(labels: torch.Tensor, size: int, *, num_classes: int | None = None, seed: int = 0) -> torch.Tensor:
    """Picks a class-balanced random subset: ``size // C`` samples of each class.

    When ``C`` does not divide ``size``, the first ``size % C`` classes get one sample more. The choice
    depends only on ``labels``, ``size`` and ``seed``.

    Args:
        labels: (N,) integer labels in ``[0, num_classes)``.
        size: The number of samples to keep.
        num_classes: C; defaults to ``labels.max() + 1``.
        seed: Seeds the choice.

    Returns:
        (size,) int64 indices into ``labels``, in increasing order (the data set's order).

    Raises:
        ValueError: If ``size`` is not positive or a class has too few samples.
    """
    labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if size < 1:
        raise ValueError(f"subset size must be positive, got {size}")
    need = torch.full((num_classes,), size // num_classes, dtype=torch.int64)
    need[: size % num_classes] += 1
    have = torch.bincount(labels, minlength=num_classes)
    short = (have < need).nonzero().flatten().tolist()
    if short:
        c = short[0]
        raise ValueError(f"a subset of {size} needs {int(need[c])} samples of class {c}, which has only {int(have[c])}")
    # A random permutation, stably grouped by class, keeps a random order within each class; the
    # first need[c] of class c are its choice.
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    grouped = perm[torch.argsort(labels[perm], stable=True)]
    starts = torch.cumsum(have, 0) - have
    grouped_labels = labels[grouped]
    rank_in_class = torch.arange(len(labels)) - starts[grouped_labels]
    return grouped[rank_in_class < need[grouped_labels]].sort().values

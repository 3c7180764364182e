"""When a run writes its checkpoints, and what it does when it cannot write one or is told to stop.

``fit`` hands every step and every epoch's end to a :class:`CheckpointSaver`:

- at each epoch's end it writes the epoch's checkpoint (``epoch_0003``);
- with ``--save-every N`` it also writes one after every N-th optimiser step of the run (``--save-every
  10m``: once ten minutes have passed since the last), named ``epoch_0003_step_000120``; the last step of
  an epoch has the epoch's own;
- when a stop is requested (``senet.train.interrupt``) it writes a checkpoint after the current step and
  raises ``TrainingStopped``;
- when a checkpoint cannot be written (full disk, read-only folder) it raises one ``OSError`` whose
  message names the folder, the reason and the last good checkpoint; nothing partial is left.

In a multi-process run every process takes the same decisions at the same step (one small all-reduce
per step), rank 0 alone writes, and the others learn from it whether the write succeeded.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ..io import CHECKPOINTS_DIR, checkpoint_name
from . import distributed as dist
from .checkpoint import describe_position
from .config import SaveInterval
from .engine import EpochProgress
from .interrupt import TrainingStopped, injected_faults_after_step, pending_signal, stop_requested

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


class CheckpointSaver:
    """Decides, after each step and each epoch, whether to checkpoint or stop, and writes through ``write``.

    Args:
        out: The run directory.
        write: ``write(epoch=, step=, progress=)`` writes one checkpoint (rank 0 only calls it).
        interval: The mid-epoch cadence (``None``: at epochs' ends only).
        steps_per_epoch: Optimiser steps per epoch (on each process).
        device: The training device (where the processes' agreement is reduced).
        last: ``(epoch, step)`` of the checkpoint the run resumed from, or ``None``.
    """

    def __init__(
        self, *, out: Path, write: Callable[..., object], interval: SaveInterval | None, steps_per_epoch: int,
        device: torch.device, last: tuple[int, int] | None = None,
    ) -> None:  # fmt: skip
        self.out, self.write, self.interval = Path(out), write, interval
        self.steps_per_epoch, self.device, self.last = steps_per_epoch, device, last
        self._since = time.monotonic()

    def after_step(self, epoch: int, progress: EpochProgress) -> None:
        """Called after each step of epoch ``epoch`` (0-based): checkpoints when due, stops when asked.

        Raises:
            TrainingStopped: After writing the checkpoint of this step, when a stop was requested.
            OSError: If a checkpoint cannot be written.
        """
        global_step = epoch * self.steps_per_epoch + progress.step
        injected_faults_after_step(dist.rank(), global_step)
        due, stop = dist.any_rank((self._due(global_step, progress.step), stop_requested() is not None), self.device)
        if due or stop:
            self.save(epoch, progress.step, progress)
        if stop:
            raise self._stopped(epoch, progress.step)

    def epoch_end(self, epochs_done: int) -> None:
        """Writes the checkpoint of an epoch's end; then stops if asked to (during the epoch's evaluation).

        Raises:
            TrainingStopped: After the checkpoint, when a stop was requested.
            OSError: If the checkpoint cannot be written.
        """
        self.save(epochs_done, 0)
        (stop,) = dist.any_rank((stop_requested() is not None,), self.device)
        if stop:
            raise self._stopped(epochs_done, 0)

    def _due(self, global_step: int, step: int) -> bool:
        if self.interval is None or step >= self.steps_per_epoch:  # an epoch's last step has the epoch's own
            return False
        if self.interval.steps is not None:
            return global_step % self.interval.steps == 0
        return dist.is_main_process() and time.monotonic() - self._since >= self.interval.seconds

    def save(self, epoch: int, step: int, progress: EpochProgress | None = None) -> None:
        """Writes the checkpoint of ``epoch`` completed epochs and ``step`` more steps (rank 0).

        Raises:
            OSError: On every process, if rank 0 could not write it (one line: where, why, the last good
                checkpoint); the previous checkpoints and LATEST are untouched.
        """
        error, state = None, progress.state_dict() if progress is not None else None  # (every process)
        if dist.is_main_process():
            try:
                self.write(epoch=epoch, step=step, progress=state)
            except OSError as e:
                error = self.cannot_write(self.out / CHECKPOINTS_DIR, e)
        error = dist.broadcast_object(error)  # also keeps the processes together while rank 0 writes
        if error is not None:
            raise OSError(error)
        self.last, self._since = (epoch, step), time.monotonic()

    @contextlib.contextmanager
    def writing(self, path: Path) -> Iterator[None]:
        """Turns an ``OSError`` of a write to ``path`` (a log, the final weights) into the same one line."""
        try:
            yield
        except OSError as e:
            raise OSError(self.cannot_write(path, e)) from None

    def cannot_write(self, where: Path, error: OSError) -> str:
        """The one line of a failed write: where, why, the last good checkpoint and how to go on."""
        reason = error.strerror or str(error) or type(error).__name__
        if error.errno in _NO_SPACE:
            fix = "free space and resume with --resume"
        elif error.errno in _NOT_WRITABLE:
            fix = f"make {where} writable and resume with --resume"
        else:
            fix = "fix that and resume with --resume"
        what = f"checkpoint to {where}" if where.name == CHECKPOINTS_DIR else str(where)
        return f"cannot write {what} ({reason}); {self.last_good()}; {fix}"

    def last_good(self) -> str:
        """'the last good checkpoint is epoch_0002 (the end of epoch 2)', or that there is none yet."""
        if self.last is None:
            return "no checkpoint was written yet"
        return f"the last good checkpoint is {checkpoint_name(*self.last)} ({describe_position(*self.last)})"

    def _stopped(self, epoch: int, step: int) -> TrainingStopped:
        reason = stop_requested() or "a stop request of another process"
        return TrainingStopped(reason, describe_position(epoch, step), self.out, pending_signal())

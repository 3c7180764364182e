"""Stopping a long command on SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption), after a checkpoint.

``senet train``, ``compare``, ``ablate`` and ``reproduce`` run their work inside :func:`stoppable`: the first
signal makes the run in progress write a checkpoint after its current step and stop; one line then says
where it stopped and the command that continues it, and the command exits with 128 + the signal's number
(130, 143). A second signal stops at once (``senet.train.interrupt.stop_on_signals``), leaving nothing
partial.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..train.interrupt import TrainingStopped, stop_on_signals


@dataclass
class Stop:
    """Set by :func:`stoppable` when the work stopped on request: ``code`` is the command's exit code."""

    code: int | None = None


@contextlib.contextmanager
def stoppable(resume: Callable[[TrainingStopped], str] | None = None) -> Iterator[Stop]:
    """Runs the body with signals turned into stop requests; a ``TrainingStopped`` leaving it is reported in
    one line (by rank 0 of a multi-process run) and recorded in the yielded :class:`Stop`.

    Args:
        resume: Gives the resume command for a stop that does not carry one (``TrainingStopped.resume_command``).
    """
    stop = Stop()
    with stop_on_signals():
        try:
            yield stop
        except TrainingStopped as stopped:
            if os.environ.get("RANK", "0") == "0":
                command = stopped.resume_command or (resume(stopped) if resume else None)
                print(stopped.line(command), file=sys.stderr, flush=True)
            stop.code = stopped.exit_code

"""Stopping a run cleanly: stop requests, the signals that make them, and the test-only fault hooks.

A run checks for a stop request after every training step (and after each epoch's checkpoint); when one
is pending, it writes a checkpoint and raises :class:`TrainingStopped`. Every process of a multi-process
run agrees on the step (``senet.train.saving``), so they all stop at the same one.

Process-wide side effects belong to entry points: ``senet train``, ``compare``, ``ablate`` and ``reproduce``
run inside :func:`stop_on_signals` (through ``senet.cli._stop``), which turns the first SIGINT (Ctrl-C) or
SIGTERM (a scheduler's preemption) into a stop request and a second SIGINT or SIGTERM into an immediate
``KeyboardInterrupt``. A library caller may call
:func:`request_stop` from another thread instead.

The ``SENET_TEST_*`` environment variables are test-only fault injection (docs/reliability.md); each is
inert unless set.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# A repeat of the first signal within this many seconds counts as the same request: under torchrun a
# terminal's Ctrl-C reaches each worker twice, from the terminal and forwarded by torchrun's agent.
REPEAT_WINDOW_S = 1.0

_lock = threading.Lock()
_request: dict[str, object] = {}  # {'reason': 'SIGINT', 'signal': 2, 'time': monotonic seconds} when pending


def request_stop(reason: str = "a stop request", signum: int | None = None) -> None:
    """Asks the running ``fit`` to write a checkpoint after its current step and stop.

    Args:
        reason: Says what asked (e.g. 'SIGTERM'), in the line the command prints.
        signum: The signal that asked, if any (sets the exit code, 128 + signum).
    """
    with _lock:
        if not _request:
            _request.update(reason=reason, signal=signum, time=time.monotonic())


def stop_requested() -> str | None:
    """The reason of the pending stop request, or ``None``."""
    return _request.get("reason")  # type: ignore[return-value]


def clear_stop() -> None:
    """Forgets a pending stop request (a new run starts with none)."""
    with _lock:
        _request.clear()


class TrainingStopped(KeyboardInterrupt):
    """A run stopped on request after writing a checkpoint; resuming it continues exactly.

    A ``KeyboardInterrupt``, so that code which cleans up after Ctrl-C does so here too.

    Attributes:
        reason: What asked ('SIGINT', 'SIGTERM', ...).
        where: Where the run stopped ('epoch 2 step 3', 'after epoch 2'); an experiment of several runs adds
            which run ('epoch 1 step 3 of run 2/4 (se-seed0)').
        out: The run directory.
        exit_code: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM); 130 without a signal.
        resume_command: The command that continues the work, where the code that caught it knows one better
            than ``senet train`` (an experiment of several runs sets its own); else ``None``.
    """

    def __init__(self, reason: str, where: str, out: Path, signum: int | None = None) -> None:
        super().__init__(f"stopped by {reason} at {where}; checkpoint written in {out}")
        self.reason, self.where, self.out = reason, where, Path(out)
        self.exit_code = 128 + (signum if signum is not None else signal.SIGINT)
        self.resume_command: str | None = None

    def line(self, resume_command: str | None = None) -> str:
        """The one line a command prints: where it stopped, and the command that resumes it (``resume_command``,
        else the one set on the exception)."""
        command = resume_command or self.resume_command
        return f"stopped by {self.reason} at {self.where}; checkpoint written; resume with: {command}"


def resume_command(words: list[str]) -> str:
    """The shell command ``senet <words>``; under torchrun, launched again with the same number of processes
    (a multi-process run resumes on as many)."""
    command = ["senet", *words]
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1:
        command = ["torchrun", f"--nproc_per_node={processes}", "-m", *command]
    return shlex.join(command)


def pending_signal() -> int | None:
    """The signal number of the pending stop request, if a signal made it."""
    return _request.get("signal")  # type: ignore[return-value]


@contextlib.contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """For entry points: while inside, the first of ``signals`` requests a stop (a checkpoint, then
    :class:`TrainingStopped`); another one, more than ``REPEAT_WINDOW_S`` later, raises ``KeyboardInterrupt``
    at once (a checkpoint being written is then discarded whole, never left partial). The previous
    handlers are restored on exit. Outside the main thread it does nothing (Python delivers signals there
    only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        first = _request.get("time")
        if first is None:
            request_stop(signal.Signals(signum).name, signum)
        elif time.monotonic() - first > REPEAT_WINDOW_S:  # type: ignore[operator]
            raise KeyboardInterrupt

    previous = {s: signal.getsignal(s) for s in signals}
    clear_stop()
    for s in signals:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        clear_stop()


# Test-only fault injection (docs/reliability.md). Each reads its variable when called; unset, nothing happens.


def _seconds(name: str) -> float:
    try:
        return max(0.0, float(os.environ.get(name, "0") or 0))
    except ValueError:
        return 0.0


def injected_pause_in_save() -> None:
    """SENET_TEST_PAUSE_IN_SAVE=SECONDS: sleep between the files of a checkpoint being written."""
    pause = _seconds("SENET_TEST_PAUSE_IN_SAVE")
    if pause:
        time.sleep(pause)


_saves_before_hold = [0]  # the checkpoints this process has written past the hold (SENET_TEST_HOLD_AFTER_SAVES)


def injected_hold_in_save() -> None:
    """SENET_TEST_HOLD_IN_SAVE=PATH: once a checkpoint's weights are written (its state not yet), creates the
    file PATH and holds the write open until the process is killed, so that a kill lands inside the write
    whatever the machine's speed (the test kills after PATH appears, not after a guessed delay).
    SENET_TEST_HOLD_AFTER_SAVES=N: the first N checkpoints of the process are written whole, the next held."""
    path = os.environ.get("SENET_TEST_HOLD_IN_SAVE")
    if path:
        if _saves_before_hold[0] < int(_seconds("SENET_TEST_HOLD_AFTER_SAVES")):
            _saves_before_hold[0] += 1
            return
        Path(path).touch()
        while True:
            time.sleep(1)


def injected_faults_after_step(rank: int, global_step: int) -> None:
    """SENET_TEST_STEP_SLEEP=SECONDS: sleep after every training step. SENET_TEST_DIE_AT_STEP=RANK:STEP: the
    process of that rank exits at once (``os._exit(1)``, no clean-up) after that step (counted from 1 over
    the whole run)."""
    pause = _seconds("SENET_TEST_STEP_SLEEP")
    if pause:
        time.sleep(pause)
    die = os.environ.get("SENET_TEST_DIE_AT_STEP")
    if die:
        who, _, when = die.partition(":")
        if who.strip() == str(rank) and when.strip() == str(global_step):
            os._exit(1)

"""Whether a run trains its model under ``torch.compile``: measured on the machine at hand, for the run
about to start.

Compiling costs once (Dynamo traces the model, Inductor builds kernels: 30-80 s for a CIFAR ResNet on
2 CPU cores when its cache is cold) and saves a little on every step afterwards (1.03x to 1.35x for the
CIFAR ResNets at batch 128 on 2-core AMD CPUs, by network and by day: docs/benchmarks.md). So:

* a run of fewer than ``MIN_STEPS`` steps stays eager unmeasured, and one whose whole eager training
  (one pass timed) is shorter than ``MIN_EAGER_SECONDS`` stays eager without compiling anything: no
  speed-up seen on these networks could pay back a compile there;
* a longer run compiles a copy of the model and times forward and backward passes of it against
  the eager one on a batch of the run's shape, alternately (2 to 6 rounds; the fastest of each counts);
  it compiles when the time saved over the run's steps exceeds what that compile cost (the run's own
  compile then mostly hits Inductor's cache);
* ``--compile`` / ``--no-compile`` (or an experiment's first run, whose mode its other runs keep:
  ``experiment_mode``) decide without measuring; where Inductor cannot work (no C++
  compiler, an unsupported platform) the run falls back to eager mode with one line, never a traceback.

The choice is recorded in the run's configuration, so a resumed run continues in the same mode and ends
bit-identical to an uninterrupted one (tested eagerly and, in the slow tier, compiled).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .._errors import first_line
from .._plural import plural
from ..utils.timing import format_duration, sync
from .engine import AMP_DTYPES

MIN_EAGER_SECONDS = 300.0  # below 5 min of eager training a 1.35x speed-up saves < 80 s: less than a cold compile
MIN_STEPS = 50  # fewer steps stay eager unmeasured: a compiled step saves a fraction of one, a compile costs tens
_TIMED_STEPS = 3  # eager passes timed (the fastest counts) to tell a run too short to compile for
_ROUNDS = (2, 6)  # the fewest and most rounds of one eager and one compiled pass, timed alternately


@dataclass(frozen=True)
class CompileChoice:
    """The mode a run trains in.

    Attributes:
        compile: Whether the model is wrapped in ``torch.compile``.
        reason: Why, in words, for the run's first lines ('compiled: ...' / 'eager: ...').
    """

    compile: bool
    reason: str


def _pass_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: str, device: torch.device) -> float:
    """Seconds of one forward and backward pass."""
    dtype = AMP_DTYPES[amp]
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    sync(device)
    return time.perf_counter() - start


def _fastest_interleaved(eager: nn.Module, compiled: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: str,
                         device: torch.device, rounds: int) -> tuple[float, float]:  # fmt: skip
    """The fastest pass of each model over ``rounds`` rounds of one eager and one compiled pass: on a noisy
    machine a slow moment then hits both alike (three passes of each in a row once read a compiled ResNet-20
    step, 1.1-1.4x as fast in longer measurements, as 0.82x)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for model, seconds in zip((eager, compiled), times, strict=True):
            seconds.append(_pass_seconds(model, x, y, amp, device))
    return min(times[0]), min(times[1])


@contextlib.contextmanager
def _quiet_compiler() -> Iterator[None]:
    """Keeps Dynamo's and Inductor's own log lines (a failed compile logs where it left its files) off the
    console during the trial: its outcome is said in one line."""
    loggers = [logging.getLogger(name) for name in ("torch._dynamo", "torch._inductor")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def choose_compile(requested: bool | None, model: nn.Module, *, batch: tuple[int, ...], num_classes: int,
                   steps: int, device: torch.device, amp: str = "none", channels_last: bool = False,
                   set_by: str = "as set") -> CompileChoice:  # fmt: skip
    """Decides whether the run about to start trains ``model`` compiled; nothing of ``model`` or of the
    random number generators is changed (the measurements run on copies, under a forked RNG).

    Args:
        requested: ``True`` (``--compile``), ``False`` (``--no-compile``) or ``None`` (measure and choose).
        model: The network, as it will train.
        batch: The shape of one training batch (N, C, H, W).
        num_classes: The labels' range.
        steps: The optimiser steps left in the run.
        device: Where it trains.
        amp: The run's mixed precision.
        channels_last: Whether the run feeds channels_last inputs.
        set_by: Where a set mode came from, for the reason ('as set': ``--compile/--no-compile``; a resumed
            run's recorded mode, an experiment's first run's choice).

    Returns:
        The choice and its reason.
    """
    if requested is False:
        return CompileChoice(False, f"eager ({set_by})")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        x = torch.randn(batch, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, num_classes, (batch[0],), device=device)
        eager_s = None
        if requested is None and steps < MIN_STEPS:
            return CompileChoice(
                False, f"eager: {plural(steps, 'step')}, too few for compiling to pay back (--compile to compile)"
            )
        if requested is None:
            probe = copy.deepcopy(model).train()
            eager_s = _pass_seconds(probe, x, y, amp, device)  # a first pass is the slowest: a short run is
            if eager_s * steps >= MIN_EAGER_SECONDS:  # known short from it, at the least cost
                eager_s = min(_pass_seconds(probe, x, y, amp, device) for _ in range(_TIMED_STEPS))
            if eager_s * steps < MIN_EAGER_SECONDS:
                why = f"about {format_duration(eager_s * steps)} of training, too short for compiling to pay back"
                return CompileChoice(False, f"eager: {why} (--compile to compile)")
        try:
            with _quiet_compiler():
                compiled = torch.compile(copy.deepcopy(model).train())
                compile_s = _pass_seconds(compiled, x, y, amp, device)  # its first call compiles
                compiled_s = 0.0
                if eager_s is not None:
                    rounds = max(_ROUNDS[0], min(_ROUNDS[1], steps // 100))  # at most a few % of the run's steps
                    eager_s, compiled_s = _fastest_interleaved(probe, compiled, x, y, amp, device, rounds)
        except Exception as e:  # noqa: BLE001 - any failure of Dynamo/Inductor here means: train eagerly
            was_set = " (compiling was set)" if set_by == "as set" else f" (compiled {set_by})"
            hint = "" if requested is None else was_set
            return CompileChoice(False, f"eager: torch.compile does not work here{hint}: {first_line(e)[:160]}")
        finally:
            torch._dynamo.reset()  # the copy's graphs go; Inductor's cache keeps the kernels for the run's compile
    if requested:
        return CompileChoice(True, f"compiled ({set_by}; compiling took {format_duration(compile_s)})")
    assert eager_s is not None
    saved = (eager_s - compiled_s) * steps
    speed = f"a step {eager_s / compiled_s:.2f}x as fast" if compiled_s > 0 else "no faster"
    if saved > compile_s:
        return CompileChoice(True, f"compiled: {speed} saves about {format_duration(saved)} of "
                                   f"{format_duration(eager_s * steps)} for {format_duration(compile_s)} of compiling "
                                   "(--no-compile for eager)")  # fmt: skip
    return CompileChoice(False, f"eager: compiled, {speed}, would save {format_duration(max(saved, 0.0))} for "
                                f"{format_duration(compile_s)} of compiling (--compile to compile anyway)")  # fmt: skip


def experiment_mode(compile: bool | None, summary: dict) -> bool | None:
    """The mode for the next runs of an experiment (compare, reproduce, ablate): the one set, else the one
    its first run chose (recorded in its summary's configuration), so that every run trains alike."""
    if compile is not None:
        return compile
    value = summary.get("config", {}).get("compile")
    return value if isinstance(value, bool) else None

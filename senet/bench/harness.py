"""Timing machinery: warm up, calibrate, then time the contenders in interleaved rounds.

Every contender is a callable taking no argument. ``compare`` runs them round-robin (round r starts
with contender r mod k, so no contender always follows the same neighbour), so a drift of the machine
(another process, frequency scaling, a warming cache) hits all of them alike, and every round gives
one paired ratio between any two contenders. A sample is the mean time of ``number`` back-to-back
calls, ``number`` chosen once per contender so that a sample lasts at least ``min_time`` seconds.

Timers: ``cpu_timer`` (``time.perf_counter``, garbage collection paused as ``timeit`` does) and
``cuda_timer`` (CUDA events, synchronised before and after the timed region).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..utils.timing import sync

Timer = Callable[[Callable[[], object], int], float]
"""``timer(fn, number) -> seconds per call`` of ``number`` back-to-back calls of ``fn``."""


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile of ``values`` with linear interpolation (numpy's default method).

    Raises:
        ValueError: If ``values`` is empty or ``q`` is outside [0, 1].
    """
    if not values:
        raise ValueError("quantile of no values")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def geometric_mean(values: Sequence[float]) -> float:
    """The geometric mean of positive ``values`` (the mean of ratios that treats x and 1/x alike).

    Raises:
        ValueError: If ``values`` is empty or holds a non-positive value.
    """
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"geometric mean needs positive values, got {list(values)}")
    return math.exp(sum(math.log(v) for v in values) / len(values))


@dataclass(frozen=True)
class Stats:
    """Summary of a list of samples: median, quartiles, extremes and count."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarises ``samples`` (at least one)."""
        return cls(
            median=quantile(samples, 0.5), q1=quantile(samples, 0.25), q3=quantile(samples, 0.75),
            min=min(samples), max=max(samples), n=len(samples),
        )  # fmt: skip

    @property
    def iqr(self) -> float:
        """The interquartile range q3 - q1."""
        return self.q3 - self.q1

    def scaled(self, factor: float) -> Stats:
        """The same summary with every value multiplied by ``factor`` (> 0), e.g. seconds to ms."""
        return Stats(self.median * factor, self.q1 * factor, self.q3 * factor, self.min * factor,
                     self.max * factor, self.n)  # fmt: skip

    def to_dict(self) -> dict[str, float]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "min": self.min, "max": self.max, "n": self.n}


@dataclass(frozen=True)
class Ratio:
    """``numerator / denominator`` of two contenders' times.

    Interleaving pairs the contenders round by round: round r of the numerator over round r of the
    denominator is one paired ratio, from which a drift of the machine mostly cancels.

    Attributes:
        value: The median of the paired ratios (the headline number).
        paired: The spread of the paired ratios; its q1..q3 is the ratio's IQR.
        of_medians: The ratio of the two medians, for reference.
    """

    numerator: str
    denominator: str
    value: float
    paired: Stats
    of_medians: float

    def scaled(self, factor: float) -> Ratio:
        """The ratio multiplied by ``factor`` (> 0), e.g. to compare with 1.5 x a denominator."""
        return Ratio(self.numerator, self.denominator, self.value * factor, self.paired.scaled(factor),
                     self.of_medians * factor)  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        return {"numerator": self.numerator, "denominator": self.denominator, "value": self.value,
                "paired": self.paired.to_dict(), "of_medians": self.of_medians}  # fmt: skip


@dataclass
class Comparison:
    """The samples of interleaved contenders.

    Attributes:
        samples: Seconds per call, one per round, in round order, by contender.
        number: Calls per sample, by contender.
        order: The contenders in the order they were timed (all rounds, warm-up excluded).
    """

    samples: dict[str, list[float]]
    number: dict[str, int]
    order: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.samples)

    def stats(self, name: str) -> Stats:
        """Seconds per call of contender ``name``."""
        return Stats.of(self.samples[name])

    def ratio(self, numerator: str, denominator: str) -> Ratio:
        """The time of ``numerator`` over the time of ``denominator`` (> 1: the numerator is slower)."""
        a, b = self.samples[numerator], self.samples[denominator]
        paired = Stats.of([x / y if y > 0 else math.inf for x, y in zip(a, b, strict=True)])
        return Ratio(numerator, denominator, paired.median, paired,
                     self.stats(numerator).median / self.stats(denominator).median)  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        return {
            name: {"seconds": self.stats(name).to_dict(), "number": self.number[name], "samples": self.samples[name]}
            for name in self.samples
        }


def cpu_timer(clock: Callable[[], float] = time.perf_counter) -> Timer:
    """A wall-clock timer; garbage collection is paused during the timed region."""

    def timer(fn: Callable[[], object], number: int) -> float:
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            start = clock()
            for _ in range(number):
                fn()
            return (clock() - start) / number
        finally:
            if gc_was_enabled:
                gc.enable()

    return timer


def cuda_timer(device: torch.device | str | None = None) -> Timer:
    """A CUDA-event timer: synchronises, records events around the calls, waits for the last one."""

    def timer(fn: Callable[[], object], number: int) -> float:
        with torch.cuda.device(device):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / number  # elapsed_time is in ms

    return timer


def timer_for(device: torch.device | str) -> Timer:
    """The right timer for ``device``: CUDA events on CUDA, the wall clock elsewhere."""
    return cuda_timer(device) if torch.device(device).type == "cuda" else cpu_timer()


def first_call_seconds(calls: Mapping[str, Callable[[], object]], device: torch.device) -> dict[str, float]:
    """Seconds of each callable's first call, synchronised on ``device`` (for ``torch.compile``: the
    compilation and one call), timed apart from ``compare``'s rounds."""
    seconds = {}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        sync(device)
        seconds[name] = time.perf_counter() - start
    return seconds


def calibrate(fn: Callable[[], object], timer: Timer, min_time: float, *, max_number: int = 10_000) -> int:
    """The number of back-to-back calls of ``fn`` that last at least ``min_time`` seconds.

    Doubles from 1; one timed call that already lasts ``min_time`` gives 1.
    """
    number = 1
    while number < max_number:
        elapsed = timer(fn, number) * number
        if elapsed >= min_time:
            break
        # Jump close to the target, at most x10 at a time so that one noisy call cannot overshoot far.
        number = min(max_number, max(2 * number, min(10 * number, math.ceil(number * min_time / max(elapsed, 1e-9)))))
    return number


def compare(
    contenders: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    timer: Timer | None = None,
    min_time: float = 0.0,
    number: int | Mapping[str, int] | None = None,
) -> Comparison:
    """Times ``contenders`` in ``repeats`` interleaved rounds.

    Args:
        contenders: Name -> callable without arguments (one call is one unit of work).
        repeats: Rounds; each round times every contender once (one sample each).
        warmup: Untimed calls of each contender first (interleaved too).
        timer: How to time (default: ``cpu_timer()``).
        min_time: Calibrate each contender's calls per sample so that a sample lasts at least this long
            (seconds); 0 times one call per sample.
        number: Fixed calls per sample (for all, or by name), instead of calibrating.

    Returns:
        The :class:`Comparison`.

    Raises:
        ValueError: If there is no contender or ``repeats`` < 1.
    """
    if not contenders:
        raise ValueError("compare needs at least one contender")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    timer = timer or cpu_timer()
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    if number is None:
        numbers = {name: calibrate(contenders[name], timer, min_time) if min_time > 0 else 1 for name in names}
    elif isinstance(number, int):
        numbers = dict.fromkeys(names, number)
    else:
        numbers = {name: number.get(name, 1) for name in names}
    result = Comparison(samples={name: [] for name in names}, number=numbers)
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            result.samples[name].append(timer(contenders[name], numbers[name]))
            result.order.append(name)
    return result

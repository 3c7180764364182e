"""Timing two (or more) networks against each other so that the figure survives a busy machine.

What is compared runs in the same rounds: each round times one step of every network, in alternating
order (A B, then B A), after warm-up steps that are not counted; each network's figure is its fastest
round. Another process that slows the machine for a while slows a round of both networks, not all of one,
and the minimum keeps the rounds it left alone (the SE paper's overheads, Section 6.2 of arXiv:1709.01507,
are differences of a few percent: a figure taken from one to eight batches including the first is noise).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn

from ..utils.timing import sync

WARMUP_STEPS = 2  # per network, not counted: the first steps allocate memory and pick kernels
ROUNDS = 5  # timed steps per network, interleaved; the fastest counts
MIN_TRAINED_STEPS = 2 * (WARMUP_STEPS + ROUNDS)  # a run shorter than its own timing is too short to time


def time_interleaved(
    steps: Mapping[str, Callable[[], object]], *, warmup: int = WARMUP_STEPS, rounds: int = ROUNDS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:  # fmt: skip
    """The fastest of ``rounds`` interleaved timings of each step, after ``warmup`` uncounted calls of each.

    Args:
        steps: One callable per name, doing one step (it synchronises an accelerator itself).
        warmup: Uncounted calls of each step before the first timed round.
        rounds: Timed calls of each step; round ``r`` calls the steps in their order, reversed on odd ``r``.
        clock: Seconds (``time.perf_counter``; a test passes a fake one).

    Returns:
        Seconds of the fastest timed call of each step, by name.

    Raises:
        ValueError: If ``rounds < 1`` or ``warmup < 0``.
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0, got {rounds} and {warmup}")
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    best = dict.fromkeys(names, math.inf)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = clock()
            steps[name]()
            best[name] = min(best[name], clock() - start)
    return best


def sgd_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> Callable[[], None]:
    """One training step of ``model`` on ``(x, y)`` to time: forward, cross-entropy, backward, update."""
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        sync(device)

    return step

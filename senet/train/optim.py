"""Optimiser and learning-rate schedules.

SGD with momentum (optionally Nesterov) and weight decay applied to weights only: biases and the
affine parameters of normalisation layers (all 1-D parameters) are not decayed. Schedules are
per-iteration multipliers of the base learning rate with a linear warm-up, so that a resumed run
continues on exactly the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

SCHEDULES = ("step", "cosine", "onecycle", "constant")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Splits parameters into a decayed group (weights of conv/linear layers) and an undecayed group.

    Args:
        model: The model.
        weight_decay: The decay of the first group.

    Returns:
        Two parameter groups for ``torch.optim`` (the second with ``weight_decay=0``).
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, *, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4, nesterov: bool = False
) -> torch.optim.Optimizer:
    """SGD with momentum over ``param_groups(model, weight_decay)``.

    Raises:
        ValueError: On a non-positive learning rate or a negative momentum or decay.
    """
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if momentum < 0 or weight_decay < 0:
        raise ValueError("momentum and weight_decay must be >= 0")
    if nesterov and momentum == 0:
        raise ValueError("nesterov needs momentum > 0")
    # foreach=True updates all parameters with a few multi-tensor kernels instead of one loop per tensor.
    return torch.optim.SGD(
        param_groups(model, weight_decay), lr=lr, momentum=momentum, nesterov=nesterov, foreach=True
    )


def lr_multiplier(
    schedule: str,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    milestones: tuple[float, ...] = (0.5, 0.75),
    gamma: float = 0.1,
    final_fraction: float = 0.0,
) -> Callable[[int], float]:
    """Returns ``f(step) -> multiplier`` of the base learning rate.

    Args:
        schedule: 'step' (multiply by ``gamma`` at each milestone, given as fractions of training),
            'cosine' (half-cosine from 1 to ``final_fraction``), 'onecycle' (linear up to 1 over the
            first 30% unless ``warmup_steps`` says otherwise, then cosine down to ``final_fraction``),
            'constant'.
        total_steps: Number of optimiser steps of the whole run.
        warmup_steps: Linear warm-up from ~0 to 1 over this many steps (all schedules).
        milestones: Fractions of training where 'step' decays.
        gamma: The decay factor of 'step'.
        final_fraction: The last multiplier of 'cosine' and 'onecycle'.

    Raises:
        ValueError: On an unknown schedule or inconsistent step counts.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if schedule == "onecycle" and warmup_steps == 0:
        warmup_steps = max(1, int(0.3 * total_steps))
    warmup_steps = min(warmup_steps, total_steps)
    bounds = [int(round(m * total_steps)) for m in milestones]

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        if schedule == "step":
            return gamma ** sum(step >= b for b in bounds)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def build_scheduler(optimizer: torch.optim.Optimizer, **kwargs: object) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration ``LambdaLR`` over ``lr_multiplier(**kwargs)``; call ``step()`` after each batch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(**kwargs))

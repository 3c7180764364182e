"""How long a set of training runs will take here, from a measured training step of each model.

One training step of each distinct model is timed on random images of the model's input size (after one
warm-up step), its forward pass apart from the rest, and scaled to the runs' epochs, images and
evaluations (an evaluation costs about a forward pass). Data loading is not counted (CIFAR is augmented
on the device, a small share of a step). Measuring costs three or four steps of each model: 3 s for the
CIFAR ResNet-20 and its SE twin, some 20 s for the paper's six CIFAR networks on 2 CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..train.config import TrainConfig
from ..train.run import build_model

SMALL_BATCH = 16  # a first step at this batch tells whether the run's own batch can be measured quickly
QUICK_STEP = 1.5  # seconds: a step of the run's batch projected to take less is measured (more accurate, on a GPU
# above all); a slower model is measured at SMALL_BATCH


@dataclass(frozen=True)
class StepTime:
    """Measured seconds per image of one model.

    Attributes:
        train: One training step (forward, backward, SGD update), per image.
        inference: The forward pass, per image (what an evaluation costs).
        batch: The batch it was measured at.
    """

    train: float
    inference: float
    batch: int


def measure_step_time(cfg: TrainConfig, *, num_classes: int, device: torch.device) -> StepTime:
    """Times a training step of ``cfg``'s model on random images, and its forward pass within it.

    A first step at a small batch (``SMALL_BATCH``) is the warm-up; when a step of the run's own batch would
    then take under ``QUICK_STEP``, that batch is measured (after a warm-up at its shape), else the small
    one. The faster of two steps counts.

    Args:
        cfg: A resolved configuration (its model, model options and batch size count, not its data).
        num_classes: The classifier's size.
        device: Where to measure.
    """
    model = build_model(cfg, num_classes).to(device).train()
    size = getattr(model, "default_input_size", (3, 32, 32))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(batch: int) -> tuple[float, float]:  # (seconds of the step, of its forward pass)
        x = torch.randn(batch, *size, device=device)
        y = torch.randint(0, num_classes, (batch,), device=device)
        _sync(device)
        start = time.perf_counter()
        loss = loss_fn(model(x), y)
        _sync(device)
        forward = time.perf_counter() - start
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        return time.perf_counter() - start, forward

    batch = min(SMALL_BATCH, cfg.batch_size)
    warm_up, _ = step(batch)
    if warm_up * cfg.batch_size / batch < QUICK_STEP and cfg.batch_size > batch:
        batch = cfg.batch_size
        step(batch)  # a warm-up at the new shape
    seconds, forward = min(step(batch) for _ in range(2))  # the faster of two: another process may disturb one
    return StepTime(seconds / batch, forward / batch, batch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_seconds(cfg: TrainConfig, step: StepTime, *, train_images: int, test_images: int) -> float:
    """The estimated duration of one run of resolved ``cfg``: its epochs of training (full batches only,
    as the loader drops the last partial one) and its evaluations (every ``eval_every`` epochs, and
    once more at the end)."""
    trained = (train_images // cfg.batch_size) * cfg.batch_size if train_images >= cfg.batch_size else train_images
    evaluations = cfg.epochs // cfg.eval_every + (cfg.epochs % cfg.eval_every != 0) + 1
    return cfg.epochs * trained * step.train + evaluations * test_images * step.inference


def estimate_runs(
    configs: Sequence[TrainConfig], *, num_classes: int, device: torch.device, train_images: int, test_images: int,
) -> tuple[float, dict[str, StepTime]]:  # fmt: skip
    """The estimated duration of ``configs`` (resolved run configurations) on ``device``.

    Returns:
        The total in seconds, and the measured step time of each distinct model (by model name).
    """
    steps: dict[str, StepTime] = {}
    total = 0.0
    for cfg in configs:
        if cfg.model not in steps:
            steps[cfg.model] = measure_step_time(cfg, num_classes=num_classes, device=device)
        total += run_seconds(cfg, steps[cfg.model], train_images=train_images, test_images=test_images)
    return total, steps

"""How long a set of training runs will take here, from a measured training step of each model.

One training step of each distinct model is timed on random images of the model's input size (after
warm-up steps, the models interleaved, the fastest of three rounds), its forward pass apart, and scaled to
the runs' epochs, images and evaluations (an evaluation costs about a forward pass). Data loading is not
counted (CIFAR is augmented on the device, a small share of a step). Measuring costs six or seven steps of
each model; a resumed reproduction reuses the step times it recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..train.config import TrainConfig
from ..train.run import build_model
from .timing import sgd_step, sync, time_interleaved

SMALL_BATCH = 16  # a first step at this batch tells whether the run's own batch can be measured quickly
QUICK_STEP = 1.5  # seconds: a step of the run's batch projected to take less is measured (more accurate, on a GPU
# above all); a slower model is measured at SMALL_BATCH
SHORT_RUN_IMAGES = 10_000  # runs that train on fewer images (epochs x images) are measured at SMALL_BATCH: a rougher
# figure (a CPU's time per image at batch 16 is within ~20% of batch 128's), for seconds of training, and its
# measurement no longer costs more than the runs themselves


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


def measure_step_times(
    configs: Sequence[TrainConfig], *, num_classes: int, device: torch.device,
    clock: Callable[[], float] = time.perf_counter, small: bool = False,
) -> dict[str, StepTime]:  # fmt: skip
    """Times a training step of each distinct model of ``configs`` on random images, and its forward pass.

    A first step of each model at a small batch (``SMALL_BATCH``) is a warm-up that also picks the batch:
    the run's own when a step of it would take under ``QUICK_STEP``, else the small one. Then the models are
    timed against each other (``senet.experiments.timing.time_interleaved``: a further warm-up step at the
    chosen shape, not counted, then rounds in alternating order, the fastest of each model counting), so a
    machine that is busy for a while slows every model alike instead of the first one measured.

    Args:
        configs: Resolved configurations (their model, model options and batch size count, not their data).
        num_classes: The classifier's size.
        device: Where to measure.
        clock: Seconds (a test passes a fake one).
        small: Measure at ``SMALL_BATCH`` whatever the runs' batch (short runs: ``SHORT_RUN_IMAGES``).

    Returns:
        The step time of each distinct model, by model name.
    """
    train_steps: dict[str, Callable[[], None]] = {}
    forward_steps: dict[str, Callable[[], None]] = {}
    batches: dict[str, int] = {}
    for cfg in configs:
        if cfg.model in batches:
            continue
        model = build_model(cfg, num_classes).to(device).train()
        size = getattr(model, "default_input_size", (3, 32, 32))
        train_step, forward_step = _steps(model, size, num_classes, device)
        batch = min(SMALL_BATCH, cfg.batch_size)
        start = clock()
        train_step(batch)()  # the warm-up, which tells how long the run's batch would take
        if not small and (clock() - start) * cfg.batch_size / batch < QUICK_STEP and cfg.batch_size > batch:
            batch = cfg.batch_size
        batches[cfg.model] = batch
        train_steps[cfg.model], forward_steps[cfg.model] = train_step(batch), forward_step(batch)
    train = time_interleaved(train_steps, warmup=1, rounds=3, clock=clock)
    forward = time_interleaved(forward_steps, warmup=0, rounds=2, clock=clock)
    return {m: StepTime(train[m] / b, forward[m] / b, b) for m, b in batches.items()}


def measure_step_time(cfg: TrainConfig, *, num_classes: int, device: torch.device) -> StepTime:
    """``measure_step_times`` of one configuration."""
    return measure_step_times([cfg], num_classes=num_classes, device=device)[cfg.model]


def _steps(
    model: nn.Module, size: tuple[int, ...], num_classes: int, device: torch.device
) -> tuple[Callable[[int], Callable[[], None]], Callable[[int], Callable[[], None]]]:
    """Makers of a training step and of an evaluation's forward pass of ``model`` at a given batch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train_step(batch: int) -> Callable[[], None]:
        x = torch.randn(batch, *size, device=device)
        y = torch.randint(0, num_classes, (batch,), device=device)
        return sgd_step(model, optimizer, x, y, device)

    def forward_step(batch: int) -> Callable[[], None]:
        x = torch.randn(batch, *size, device=device)

        def step() -> None:
            with torch.no_grad():
                model(x)
            sync(device)
        return step

    return train_step, forward_step


def run_seconds(cfg: TrainConfig, step: StepTime, *, train_images: int, test_images: int) -> float:
    """The estimated duration of one run of resolved ``cfg``: its epochs of training (full batches only,
    as the loader drops the last partial one) and its evaluations (every ``eval_every`` epochs, and
    once more at the end)."""
    trained = (train_images // cfg.batch_size) * cfg.batch_size if train_images >= cfg.batch_size else train_images
    evaluations = cfg.epochs // cfg.eval_every + (cfg.epochs % cfg.eval_every != 0) + 1
    return cfg.epochs * trained * step.train + evaluations * test_images * step.inference


def estimate_runs(
    configs: Sequence[TrainConfig], *, num_classes: int, device: torch.device, train_images: int, test_images: int,
    known: Mapping[str, StepTime] | None = None,
) -> tuple[float, dict[str, StepTime]]:  # fmt: skip
    """The estimated duration of ``configs`` (resolved run configurations) on ``device``.

    Args:
        known: Step times measured before (a resumed reproduction's record): those models are not measured again.

    Returns:
        The total in seconds, and the step time of each distinct model (by model name).
    """
    known = dict(known or {})
    missing = [cfg for cfg in configs if cfg.model not in known]
    small = all(cfg.epochs * train_images < SHORT_RUN_IMAGES for cfg in configs)
    measured = measure_step_times(missing, num_classes=num_classes, device=device, small=small) if missing else {}
    steps = {**known, **measured}
    steps = {cfg.model: steps[cfg.model] for cfg in configs}
    total = sum(run_seconds(cfg, steps[cfg.model], train_images=train_images, test_images=test_images)
                for cfg in configs)  # fmt: skip
    return total, steps

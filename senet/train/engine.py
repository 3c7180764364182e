"""One epoch of training and one pass of evaluation, as library functions.

Both take any iterable of ``(images, labels)`` batches. Running sums stay on the device and are read
once per ``log_every`` steps, so the loop adds no synchronisation to the training step itself. An epoch
can be resumed part-way: ``EpochProgress`` holds what a mid-epoch checkpoint records (the running sums
included), so that the resumed epoch reports exactly what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .distributed import all_reduce_sum, gather_rows

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class StepOptions:
    """How a training step runs.

    Attributes:
        amp: 'none', 'bf16' (CUDA or CPU) or 'fp16' (CUDA, with loss scaling).
        grad_clip: Clip the global gradient norm to this value (``None``: no clipping).
        channels_last: Convert inputs to channels_last (the model should be converted too).
        log_every: Refresh the progress bar every this many steps.
    """

    amp: str = "none"
    grad_clip: float | None = None
    channels_last: bool = False
    log_every: int = 20


@dataclass
class EpochProgress:
    """How far an epoch has got: what a mid-epoch checkpoint records so that resuming it repeats nothing
    and its logged metrics equal an uninterrupted epoch's (timings aside).

    Attributes:
        step: Batches done in this epoch.
        loss_sum: Sum over the batches done of (mean loss x batch size), float64 on the device.
        correct: Correct predictions so far, int64 on the device.
        seen: Images so far (this process).
        seconds: Training time so far.
        lr: The learning rate of the last step done (``None`` before the first).
    """

    step: int = 0
    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    correct: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))
    seen: int = 0
    seconds: float = 0.0
    lr: float | None = None

    def state_dict(self) -> dict[str, Any]:
        """The progress as CPU tensors and plain values (what ``torch.load(weights_only=True)`` reads), with
        every process's running sums (``'ranks'``: (world size, 3) float64 rows of loss sum, correct, seen;
        a collective, so every process calls it) since each process sums its own shard."""
        seen = torch.tensor(float(self.seen), dtype=torch.float64, device=self.loss_sum.device)
        sums = torch.stack([self.loss_sum.double(), self.correct.double(), seen])
        return {"step": self.step, "ranks": gather_rows(sums).cpu(), "seconds": self.seconds, "lr": self.lr}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device, rank: int = 0) -> EpochProgress:
        """Rebuilds, for process ``rank``, what ``state_dict`` returned, its sums on ``device``."""
        loss_sum, correct, seen = state["ranks"][rank].tolist()
        return cls(
            step=int(state["step"]), loss_sum=torch.tensor(loss_sum, dtype=torch.float64, device=device),
            correct=torch.tensor(int(correct), dtype=torch.int64, device=device), seen=int(seen),
            seconds=float(state["seconds"]), lr=state["lr"],
        )  # fmt: skip


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """The autocast context for ``amp`` on ``device`` (a no-op for 'none').

    Raises:
        ValueError: On an unknown mode, or fp16 on the CPU.
    """
    if amp not in AMP_DTYPES:
        raise ValueError(f"unknown amp mode {amp!r}; valid: {', '.join(AMP_DTYPES)}")
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs CUDA; use --amp bf16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def _to_device(x: Tensor, y: Tensor, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    device: torch.device,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    options: StepOptions | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    start: EpochProgress | None = None,
    after_step: Callable[[EpochProgress], None] | None = None,
) -> dict[str, float]:
    """Trains ``model`` for one pass over ``loader``.

    Args:
        model: The model (possibly wrapped in DDP or compiled), in any mode; set to train mode here.
        loader: Batches of (images, labels).
        optimizer: The optimiser.
        loss_fn: ``loss_fn(logits, labels) -> scalar``.
        device: Where the step runs.
        scheduler: Stepped after every optimiser step (per-iteration schedules).
        scaler: A ``GradScaler`` for fp16.
        options: Mixed precision, clipping, memory format, logging cadence.
        progress: Called every ``log_every`` steps with (steps done, running metrics).
        start: Continue an epoch from this progress (a mid-epoch checkpoint's): ``loader`` then yields
            the batches after ``start.step`` only, and steps are numbered and summed on from there.
        after_step: Called after every step (optimiser and scheduler stepped) with the epoch's progress;
            it may write a checkpoint, or raise to stop the epoch.

    Returns:
        ``{'loss', 'accuracy', 'images', 'seconds', 'images_per_second', 'lr'}`` for the epoch
        (summed over all processes in a distributed run).

    Raises:
        FloatingPointError: If the running loss becomes NaN or infinite, or explodes (checked every
            ``log_every`` steps and at the end of the epoch).
    """
    options = options or StepOptions()
    model.train()
    begun = start or EpochProgress()
    loss_sum = begun.loss_sum.to(device, torch.float64).clone()
    correct = begun.correct.to(device, torch.int64).clone()
    seen, num_classes = begun.seen, None
    clock = time.perf_counter()
    lr = begun.lr if begun.lr is not None else optimizer.param_groups[0]["lr"]
    for step, (x, y) in enumerate(loader, begun.step + 1):
        x, y = _to_device(x, y, device, options.channels_last)
        lr = optimizer.param_groups[0]["lr"]
        with autocast(device, options.amp):
            logits = model(x)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if options.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if options.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = y.shape[0]
        seen += n
        loss_sum += loss.detach().double() * n
        correct += (logits.detach().argmax(1) == y).sum()
        num_classes = logits.shape[1]
        if step % options.log_every == 0 or step == begun.step + 1:  # one read of the sums per log_every steps
            running = loss_sum.item() / seen
            _check_loss(running, f"step {step}", lr, num_classes)
            if progress is not None:
                elapsed = begun.seconds + time.perf_counter() - clock
                progress(step, {"loss": running, "acc": correct.item() / seen, "img/s": seen / elapsed, "lr": lr})
        if after_step is not None:
            after_step(EpochProgress(step, loss_sum, correct, seen, begun.seconds + time.perf_counter() - clock, lr))
    seconds = begun.seconds + time.perf_counter() - clock
    totals = all_reduce_sum(torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=device)]))
    loss_total, correct_total, images = totals.tolist()
    if images:
        _check_loss(loss_total / images, "the end of the epoch", lr, num_classes)
    return {
        "loss": loss_total / max(images, 1),
        "accuracy": correct_total / max(images, 1),
        "images": int(images),
        "seconds": seconds,
        "images_per_second": images / seconds if seconds > 0 else 0.0,
        "lr": lr,
    }


def _check_loss(loss: float, where: str, lr: float, num_classes: int | None) -> None:
    """Raises ``FloatingPointError`` when the running mean loss is not finite, or has exploded: above
    10 ln(K) for K classes, where an untrained network starts near ln(K)."""
    exploded = num_classes is not None and loss > 10 * math.log(max(num_classes, 2))
    if not math.isfinite(loss) or exploded:
        raise FloatingPointError(
            f"the training loss became {loss:.4g} at {where} (lr {lr:g}); lower --lr (e.g. --lr {lr / 4:g}) "
            "or set --grad-clip"
        )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    *,
    num_classes: int,
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
) -> dict[str, object]:
    """Evaluates ``model`` on ``loader``.

    Args:
        model: The model; set to eval mode here.
        loader: Batches of (images, labels).
        num_classes: Number of classes (size of the confusion matrix).
        device: Where to run.
        amp: Mixed-precision mode, as in training.
        channels_last: Convert inputs to channels_last.

    Returns:
        ``{'loss', 'accuracy', 'per_class_accuracy' (list; ``None`` for a class with no image), 'confusion'
        (list of rows: true class, columns: predicted), 'images', 'seconds', 'images_per_second'}``, over
        all processes.
    """
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.int64)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    start = time.perf_counter()
    for x, y in loader:
        x, y = _to_device(x, y, device, channels_last)
        with autocast(device, amp):
            logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum").double()
        confusion += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes * num_classes)
    seconds = time.perf_counter() - start
    confusion = all_reduce_sum(confusion).view(num_classes, num_classes).cpu()
    loss_total = float(all_reduce_sum(loss_sum))
    images = int(confusion.sum())
    support = confusion.sum(1)
    per_class = [  # a class with no image has no accuracy (None), not 0%
        float(hit) / int(n) if n else None for hit, n in zip(confusion.diag().tolist(), support.tolist(), strict=True)
    ]
    return {
        "loss": loss_total / max(images, 1),
        "accuracy": float(confusion.diag().sum()) / max(images, 1),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
        "images": images,
        "seconds": seconds,
        "images_per_second": images / seconds if seconds > 0 else 0.0,
    }

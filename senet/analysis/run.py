"""One pass over the data: the model in eval and inference mode, every attention module's gates recorded."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import AnalysisData
from .recorder import DEFAULT_BINS, ExcitationRecorder
from .stats import Excitations


def record_excitations(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    num_classes: int,
    classes: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    value_range: tuple[float, float] | None = None,
    progress: bool = False,
    total: int | None = None,
) -> Excitations:
    """Records the gates of every attention module of ``model`` over ``batches``.

    The model runs in eval mode (its mode is restored afterwards) under ``torch.inference_mode``, with
    whatever forward path it has (the fast path included); nothing else about it changes.

    Args:
        model: The model, on the batches' device.
        batches: ``(images, labels)`` pairs, images ready for the model (normalised, on its device).
        num_classes: K; labels are in [0, K).
        classes: Class names in label order.
        bins: Histogram bins per block.
        value_range: The histograms' range (default: each gate's own, see ``ExcitationRecorder``).
        progress: Show a progress bar (in images).
        total: The number of images, for the progress bar.

    Returns:
        The ``Excitations``.

    Raises:
        ValueError: If the model has no attention module or one without a channel gate.
    """
    recorder = ExcitationRecorder(model, num_classes=num_classes, bins=bins, value_range=value_range)
    was_training = model.training
    model.eval()
    try:
        with recorder, tqdm(total=total, desc="recording gates", unit="img", disable=not progress) as bar:
            for images, labels in batches:
                recorder.record(images, labels)
                bar.update(len(labels))
    finally:
        model.train(was_training)
    return recorder.stats(classes)


def analyze(
    model: nn.Module,
    data: AnalysisData,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    bins: int = DEFAULT_BINS,
    workers: int = 2,
    progress: bool = False,
) -> Excitations:
    """Records ``model``'s gates over ``data`` (see ``senet.analysis.data``) on ``device``.

    The model is moved to ``device``.

    Raises:
        ValueError: On a non-positive batch size, or a model without attention modules.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    model.to(device)
    batches = data.batches(batch_size, device, workers=workers)
    return record_excitations(
        model, batches, num_classes=len(data.classes), classes=data.classes, bins=bins, progress=progress,
        total=len(data),
    )  # fmt: skip

"""Recording the channel gates of every attention module over a data set, in bounded memory.

Forward hooks on the gate submodules (see ``gates.py``) fold each batch's gates s (N, C) into running
sums as the model runs, on the model's device: per block and class, the sum and the sum of squares of
every channel's gate and the number of images; per block, a histogram with a fixed number of bins, the
values outside its range, the saturated values and the extremes. Memory is O(blocks x classes x C),
whatever the number of images; no activation and no gate is kept beyond its batch.

    >>> recorder = ExcitationRecorder(model, num_classes=10)
    >>> with recorder, torch.inference_mode():
    ...     for images, labels in batches:
    ...         with recorder.labels(labels):        # the classes of the images the next pass sees
    ...             model(images)
    >>> stats = recorder.stats(classes)              # an ``Excitations``, on the CPU
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from .blocks import check_blocks
from .gates import UNBOUNDED_RANGE, GateSource, channel_gate, find_gates, saturation_band
from .stats import BlockExcitations, Excitations

DEFAULT_BINS = 50
# A block's histogram is one int64 per bin; the figures and the JSON draw and write every bin. Gates are
# sigmoid outputs; 10,000 bins already resolve 1e-4 of their range.
MAX_BINS = 10_000
SATURATION = 0.01  # a gate within 1% of the range's ends counts as saturated (> 0.99 or < 0.01 for sigma)


class _BlockTap:
    """The running sums of one block; its ``__call__`` is the forward hook on the block's gate module."""

    def __init__(self, source: GateSource, recorder: ExcitationRecorder, value_range: tuple[float, float]) -> None:
        self.source = source
        self.recorder = recorder
        self.value_range = value_range
        self.band = saturation_band(value_range, recorder.saturation)
        self.sums: dict[str, Tensor] = {}  # allocated on the gate's device at the first call
        self.pending: Tensor | None = None  # coordinate attention: the product of the parts seen so far
        self.seen_parts = 0

    def reset_pass(self) -> None:
        """Forgets the parts of a gate seen so far (a new forward pass begins)."""
        self.pending, self.seen_parts = None, 0

    def _allocate(self, device: torch.device) -> None:
        k, c, bins = self.recorder.num_classes, self.source.channels, self.recorder.bins
        # Outside inference mode, so that later in-place updates work in and out of it.
        with torch.inference_mode(False), torch.no_grad():
            f64 = dict(dtype=torch.float64, device=device)
            i64 = dict(dtype=torch.int64, device=device)
            self.sums = {
                "class_sum": torch.zeros(k, c, **f64),  # sum over the class's images of s_c
                "class_sumsq": torch.zeros(k, c, **f64),  # sum of s_c ** 2
                "class_count": torch.zeros(k, **i64),
                "histogram": torch.zeros(bins, **i64),
                # below the range, above it, not finite, saturated low, saturated high
                "tallies": torch.zeros(5, **i64),
                "extremes": torch.tensor([math.inf, -math.inf], **f64),  # min, max of the finite gates
            }

    def __call__(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        if not isinstance(output, Tensor):
            return
        gate = channel_gate(output.detach(), self.source.channels)
        if gate is None:  # CBAM's spatial map, not a channel gate
            return
        self.pending = gate if self.pending is None else self.pending * gate
        self.seen_parts += 1
        if self.seen_parts < self.source.parts:
            return
        gate = self.pending
        self.reset_pass()
        with torch.no_grad():
            self._fold(gate.double())

    def _fold(self, s: Tensor) -> None:  # s: (N, C) float64
        if not self.sums:
            self._allocate(s.device)
        labels = self.recorder.current_labels(s.device, s.shape[0], self.source.label)
        t = self.sums
        t["class_sum"].index_add_(0, labels, s)
        t["class_sumsq"].index_add_(0, labels, s * s)
        t["class_count"].index_add_(0, labels, torch.ones_like(labels))
        low, high = self.value_range
        bins = t["histogram"].numel()
        finite = torch.isfinite(s)
        inside = finite & (s >= low) & (s <= high)
        # Bin b holds [low + b w, low + (b + 1) w); the range's top value goes in the last bin. Values outside
        # add 0 (a mask, not a selection: no host synchronisation on an accelerator).
        index = ((s.nan_to_num(low) - low) * (bins / (high - low))).clamp_(0, bins - 1).long()
        t["histogram"].index_add_(0, index.flatten(), inside.flatten().long())
        t["tallies"] += torch.stack(
            [
                (finite & (s < low)).sum(),
                (finite & (s > high)).sum(),
                (~finite).sum(),
                (finite & (s < self.band[0])).sum(),
                (finite & (s > self.band[1])).sum(),
            ]
        )
        if s.numel():  # no host synchronisation: the extremes stay on the device
            t["extremes"][0] = torch.minimum(t["extremes"][0], torch.where(finite, s, math.inf).min())
            t["extremes"][1] = torch.maximum(t["extremes"][1], torch.where(finite, s, -math.inf).max())

    def result(self) -> BlockExcitations:
        k, c, bins = self.recorder.num_classes, self.source.channels, self.recorder.bins
        if not self.sums:
            self._allocate(torch.device("cpu"))
        t = {name: v.cpu() for name, v in self.sums.items()}
        low, high = self.value_range
        tallies = t["tallies"].tolist()
        minimum, maximum = t["extremes"].tolist()
        return BlockExcitations(
            label=self.source.label,
            path=self.source.path,
            kind=self.source.kind,
            channels=c,
            class_count=t["class_count"].numpy(),
            class_sum=t["class_sum"].numpy().reshape(k, c),
            class_sumsq=t["class_sumsq"].numpy().reshape(k, c),
            histogram=t["histogram"].numpy().reshape(bins),
            value_range=(low, high),
            range_from_gate=self.source.value_range is not None,
            below=tallies[0],
            above=tallies[1],
            nonfinite=tallies[2],
            saturated_low=tallies[3],
            saturated_high=tallies[4],
            saturation=self.recorder.saturation,
            minimum=minimum if math.isfinite(minimum) else None,
            maximum=maximum if math.isfinite(maximum) else None,
        )


class ExcitationRecorder:
    """Records the channel gates of a model's attention modules with forward hooks; the model is unchanged.

    Hooks sit on the gate submodules while the recorder is entered (``with recorder:``) or between
    ``attach()`` and ``remove()``. Every forward pass must run inside ``labels(y)``, which names the
    classes of its images.

    Args:
        model: Any model with labelled attention modules (the zoo's, ``senet.retrofit``'s, loaded ones).
        num_classes: K; labels are in [0, K).
        blocks: Record only these blocks (labels such as 'SE_2_3'); ``None``: all of them.
        bins: The histogram's bins per block.
        value_range: The histogram's range; ``None``: each gate's own range (sigmoid: [0, 1]; a doubled
            gate: [0, 2]; an unbounded gate: ``UNBOUNDED_RANGE``). Values outside are counted apart.
        saturation: The share of the range at either end within which a gate counts as saturated.

    Raises:
        ValueError: If the model has no attention module, a block is unknown, an attention module has
            no channel gate, or a number is out of range.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        blocks: Sequence[str] | None = None,
        bins: int = DEFAULT_BINS,
        value_range: tuple[float, float] | None = None,
        saturation: float = SATURATION,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= MAX_BINS:
            raise ValueError(f"bins must be a positive integer of at most {MAX_BINS:,}, got {bins!r}")
        if not (isinstance(saturation, (int, float)) and 0 <= saturation < 0.5):
            raise ValueError(f"saturation must be a share of the gate range in [0, 0.5), got {saturation!r}")
        if value_range is not None:
            saturation_band(tuple(map(float, value_range)), saturation)  # checks the range
        sources = find_gates(model)
        if not sources:
            raise ValueError(f"{type(model).__name__} has no attention module to analyse (no labelled SE, ECA, ...)")
        chosen = check_blocks(blocks, list(sources)) if blocks is not None else list(sources)
        self.model = model
        self.num_classes = num_classes
        self.bins = bins
        self.saturation = float(saturation)
        self.taps = {
            label: _BlockTap(
                sources[label], self, tuple(map(float, value_range or sources[label].value_range or UNBOUNDED_RANGE))
            )
            for label in chosen
        }
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._labels: Tensor | None = None
        self._on_device: dict[torch.device, Tensor] = {}

    @property
    def blocks(self) -> list[str]:
        """The recorded blocks, in forward order."""
        return list(self.taps)

    def attach(self) -> ExcitationRecorder:
        """Installs the hooks (once)."""
        if not self._handles:
            self._handles = [tap.source.gate.register_forward_hook(tap) for tap in self.taps.values()]
        return self

    def remove(self) -> None:
        """Removes the hooks; the sums are kept."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> ExcitationRecorder:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    @contextlib.contextmanager
    def labels(self, labels: Tensor | Sequence[int]) -> Iterator[None]:
        """Names the classes of the images of the forward pass run inside (one label per image).

        Raises:
            ValueError: If a label is outside [0, num_classes) or labels are not one-dimensional.
        """
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} of shape {tuple(labels.shape)}")
        labels = labels.long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {int(labels.min())}..{int(labels.max())}")
        for tap in self.taps.values():
            tap.reset_pass()
        self._labels, self._on_device = labels, {}
        try:
            yield
        finally:
            self._labels, self._on_device = None, {}

    def current_labels(self, device: torch.device, rows: int, block: str) -> Tensor:
        """The labels of the running pass on ``device`` (for the hooks).

        Raises:
            RuntimeError: If the pass runs outside ``labels()`` or its batch has another size.
        """
        if self._labels is None:
            raise RuntimeError("a forward pass ran while the ExcitationRecorder was attached but outside "
                               "recorder.labels(y): say which classes the images belong to")  # fmt: skip
        if rows != self._labels.numel():
            raise RuntimeError(f"the gate of {block} has {rows} rows but recorder.labels() was given "
                               f"{self._labels.numel()} labels")  # fmt: skip
        if device not in self._on_device:
            self._on_device[device] = self._labels.to(device, non_blocking=True)
        return self._on_device[device]

    def record(self, images: Tensor, labels: Tensor | Sequence[int]) -> None:
        """Runs the model on one batch (in inference mode) and folds its gates into the sums."""
        with self.labels(labels), torch.inference_mode():
            self.model(images)

    def stats(self, classes: Sequence[str] | None = None) -> Excitations:
        """The recorded statistics, copied to the CPU (the recorder may go on recording).

        Args:
            classes: The class names in label order; default '0', '1', ...

        Raises:
            ValueError: If ``classes`` does not name ``num_classes`` classes.
        """
        names = tuple(str(c) for c in classes) if classes is not None else tuple(map(str, range(self.num_classes)))
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names given for {self.num_classes} classes")
        return Excitations(classes=names, blocks={label: tap.result() for label, tap in self.taps.items()})

"""What a recording holds: the running sums of every block, and the means and spreads derived from them.

Sums rather than means are kept, so that the within-class variance, which the class-specificity measure
needs to discount sampling noise, can be derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class BlockExcitations:
    """The recorded gates of one attention module (K classes, C channels).

    Attributes:
        label: The paper-style name (``SE_2_3``).
        path: The module's path in the model.
        kind: The attention module's class name.
        channels: C.
        class_count: (K,) images of each class.
        class_sum: (K, C) sum of each channel's gate over the class's images.
        class_sumsq: (K, C) sum of the squared gates.
        histogram: (bins,) counts of the gate values in ``value_range``, equal-width bins.
        value_range: (low, high) of the histogram.
        range_from_gate: Whether the range is the gate's own (else unbounded gate, a default range).
        below, above, nonfinite: Values under and over the range, and NaN or infinite ones. The histogram
            and these add up to images x C.
        saturated_low, saturated_high: Values within ``saturation`` x (high - low) of either end.
        saturation: That share of the range.
        minimum, maximum: The extreme finite gate values seen (``None`` before any).
    """

    label: str
    path: str
    kind: str
    channels: int
    class_count: np.ndarray
    class_sum: np.ndarray
    class_sumsq: np.ndarray
    histogram: np.ndarray
    value_range: tuple[float, float]
    range_from_gate: bool
    below: int
    above: int
    nonfinite: int
    saturated_low: int
    saturated_high: int
    saturation: float
    minimum: float | None
    maximum: float | None

    @property
    def images(self) -> int:
        """The number of images recorded."""
        return int(self.class_count.sum())

    @property
    def values(self) -> int:
        """The number of gate values recorded: images x C."""
        return self.images * self.channels

    @property
    def bin_edges(self) -> np.ndarray:
        """(bins + 1,) edges of the histogram."""
        return np.linspace(*self.value_range, len(self.histogram) + 1)

    @property
    def class_means(self) -> np.ndarray:
        """(K, C) mean gate of each channel over each class's images; NaN rows for classes never seen."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.class_sum / self.class_count[:, None]

    @property
    def mean(self) -> np.ndarray:
        """(C,) mean gate of each channel over all images (the paper's "all" curve)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.class_sum.sum(0) / self.images

    @property
    def class_variance(self) -> np.ndarray:
        """(K, C) unbiased variance of each channel's gate within each class; NaN below two images."""
        n = self.class_count[:, None].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            centred = self.class_sumsq - self.class_sum**2 / n  # sum of squared deviations
            return np.where(n >= 2, np.maximum(centred, 0.0) / (n - 1), np.nan)

    def to_dict(self, *, measures: dict[str, Any], class_means: bool = True) -> dict[str, Any]:
        """Plain JSON values: the sums' summaries, the means (rounded to 6 decimals) and the histogram.

        Args:
            measures: The block's measures as plain values (``measure_block(block).to_dict()``, which
                ``senet.analysis.measures`` computes from this block: this module stays below that one).
            class_means: Include the (K, C) per-class means (large for 1000 classes).
        """

        def rounded(a: np.ndarray) -> list:
            return [None if not np.isfinite(v) else round(float(v), 6) for v in a]

        out: dict[str, Any] = {
            "label": self.label,
            "path": self.path,
            "kind": self.kind,
            "channels": self.channels,
            "images": self.images,
            "class_count": self.class_count.tolist(),
            "measures": measures,
            "mean": rounded(self.mean),
            "histogram": {
                "range": list(self.value_range),
                "range_from_gate": self.range_from_gate,
                "counts": self.histogram.tolist(),
                "below": self.below,
                "above": self.above,
                "nonfinite": self.nonfinite,
            },
            "saturation": {"share_of_range": self.saturation, "low": self.saturated_low, "high": self.saturated_high},
            "minimum": self.minimum,
            "maximum": self.maximum,
        }
        if class_means:
            out["class_means"] = [rounded(row) for row in self.class_means]
        return out


@dataclass(frozen=True, eq=False)
class Excitations:
    """The recorded gates of a model's attention modules over a data set.

    Attributes:
        classes: The class names in label order.
        blocks: ``{label: BlockExcitations}`` in forward order.
    """

    classes: tuple[str, ...]
    blocks: dict[str, BlockExcitations]

    @property
    def images(self) -> int:
        """The number of images recorded (that of the first block)."""
        return next(iter(self.blocks.values())).images if self.blocks else 0

"""How class-specific a block's excitation is, and how saturated.

Hu et al. (arXiv:1709.01507, Sec. 7.2 and Fig. 6) read the mean gate per channel for several classes:
in early blocks the curves of different classes coincide (class-agnostic features), in later blocks they
part (class-specific), and in the last blocks most gates sit near 1 (saturated: close to the identity).
One number per block makes that reading comparable across blocks and models.

With m_kc the mean gate of channel c over the images of class k (K classes seen, C channels) and
m_c = mean_k m_kc:

    B = mean_c var_k(m_kc) - noise     spread between classes (variance of the class curves about
                                       their mean, less the part sampling noise explains)
    S = var_c(m_c)                     spread between channels (how far the mean curve is from flat)
    class specificity = B / (B + S)    in [0, 1]

0: every class has the same gate profile (class-agnostic); 1: the channels are alike on average and
only the classes differ. noise = (K - 1) / K * mean_kc(v_kc / n_k), v_kc the unbiased variance within
class k of images' gates: the expected variance of class means from n_k images each when the classes do
not differ at all, so that a few images per class do not pass for specificity (B is clipped at 0;
classes of one image give no estimate of v and count as noise-free). Variances are population
variances over classes and channels; every class seen weighs the same.

Saturation: the share of all gate values (images x channels) within 1% of either end of the gate's
range: > 0.99 or < 0.01 for the sigmoid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .stats import BlockExcitations

MIN_PER_CLASS = 2  # images per class for an estimate of v_kc, hence of the noise B is corrected for


@dataclass(frozen=True)
class BlockMeasures:
    """One block's summary numbers (``None`` where undefined, e.g. with fewer than two classes).

    Attributes:
        label: The block.
        channels: C.
        images: Images recorded.
        classes: Classes with at least one image.
        mean_gate: The mean of all gate values.
        class_spread: sqrt(B), the noise-corrected spread of the class curves (see the module docstring).
        channel_spread: sqrt(S), the spread of the all-class curve over channels.
        within_class_spread: The root mean within-class variance: how much images of one class differ.
        class_specificity: B / (B + S).
        saturated_low: Share of gate values in the bottom ``saturation`` of the range.
        saturated_high: Share in the top ``saturation`` of the range.
    """

    label: str
    channels: int
    images: int
    classes: int
    mean_gate: float | None
    class_spread: float | None
    channel_spread: float | None
    within_class_spread: float | None
    class_specificity: float | None
    saturated_low: float | None
    saturated_high: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (rounded to 6 decimals)."""
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def measure_block(block: BlockExcitations) -> BlockMeasures:
    """Computes a block's class specificity, spreads and saturation from its recorded sums.

    Args:
        block: The recording of one attention module.

    Returns:
        The ``BlockMeasures``.
    """
    seen = block.class_count > 0
    k, values = int(seen.sum()), block.values
    if values == 0:
        return BlockMeasures(block.label, block.channels, 0, 0, None, None, None, None, None, None, None)
    means = block.class_means[seen]  # (K', C)
    variance = block.class_variance[seen]  # (K', C), NaN for one-image classes
    within = float(np.nanmean(variance)) if np.isfinite(variance).any() else math.nan
    between = channels = specificity = None
    if k >= 2:
        noise = (k - 1) / k * float(np.nan_to_num(variance / block.class_count[seen][:, None], nan=0.0).mean())
        between = max(float(means.var(0).mean()) - noise, 0.0)
        channels = float(means.mean(0).var())
        specificity = between / (between + channels) if between + channels > 0 else None
    return BlockMeasures(
        label=block.label,
        channels=block.channels,
        images=block.images,
        classes=k,
        mean_gate=float(block.class_sum.sum() / values),
        class_spread=math.sqrt(between) if between is not None else None,
        channel_spread=math.sqrt(channels) if channels is not None else None,
        within_class_spread=math.sqrt(within) if math.isfinite(within) else None,
        class_specificity=specificity,
        saturated_low=block.saturated_low / values,
        saturated_high=block.saturated_high / values,
    )

"""Small helpers shared by the attention modules: argument checks, shape checks, rounding."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Rounds ``value`` to a multiple of ``divisor`` (the MobileNet/EfficientNet convention).

    Args:
        value: The width to round.
        divisor: The multiple to round to; 1 leaves ``int(value)`` unchanged.
        min_value: The smallest result allowed (defaults to ``divisor``).
        round_limit: Rounding down may not lose more than ``1 - round_limit`` of ``value``.

    Returns:
        The rounded width.
    """
    if divisor == 1:
        return max(int(value), min_value or 1)
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


# The widest hidden layer a reduction ratio may ask for, as a multiple of C (r >= 1/64): below that, a
# mistyped ratio (1e-6 for 16) would allocate gigabytes, or overflow torch's sizes, before any check.
MAX_EXPANSION = 64


def hidden_width(channels: int, reduction: float, minimum: int = 1) -> int:
    """The hidden width ``max(minimum, C // r)`` of a bottleneck, after checking the ratio ``r``.

    Raises:
        ValueError: If ``reduction`` is not a positive finite number (``True``, NaN and infinity
            included), or asks for a hidden layer more than ``MAX_EXPANSION`` times wider than C.
    """
    if (
        isinstance(reduction, bool)
        or not isinstance(reduction, (int, float))
        or not math.isfinite(reduction)
        or reduction <= 0
    ):
        raise ValueError(f"reduction must be a positive finite number, got {reduction!r}")
    hidden = max(minimum, int(channels // reduction))
    if hidden > max(minimum, MAX_EXPANSION * channels):
        raise ValueError(
            f"reduction={reduction!r} asks for a hidden width of {hidden} for {channels} channels, over "
            f"{MAX_EXPANSION} times C; the reduction must be at least 1/{MAX_EXPANSION}"
        )
    return hidden


def check_channels(channels: int) -> int:
    """Validates a channel count at construction; returns it as an ``int``."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    return channels


def check_dims(dims: int, supported: tuple[int, ...] = (1, 2, 3), method: str = "this module") -> int:
    """Validates the number of spatial dimensions at construction."""
    # ``True == 1`` and ``2.0 == 2``: without the type check those would pass and fail later.
    if isinstance(dims, bool) or not isinstance(dims, int) or dims not in supported:
        raise ValueError(
            f"dims={dims!r} is not supported by {method}; supported: {', '.join(map(str, supported))} "
            "(1: (N, C, L), 2: (N, C, H, W), 3: (N, C, D, H, W))"
        )
    return dims


def conv_nd(dims: int) -> type[nn.Module]:
    """Returns ``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d`` for ``dims`` 1, 2 or 3."""
    return _CONV[dims]


def batch_norm_nd(dims: int) -> type[nn.Module]:
    """Returns the batch norm class for ``dims`` 1, 2 or 3."""
    return _BN[dims]


def check_input(x: Tensor, channels: int, dims: int, module: str) -> None:
    """Raises a ``ValueError`` naming what was expected when ``x`` does not fit the module.

    Scriptable, and free under ``torch.compile`` (shape checks become guards).

    Raises:
        TypeError: If ``x`` is not a floating-point tensor (an integer or complex tensor, an array).
        ValueError: If its number of dimensions or channels does not fit, or a spatial size is 0.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{module} expects a tensor (N, C, *spatial), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{module} expects a floating-point input (float16, bfloat16, float32 or float64), got {x.dtype}"
        )
    if x.dim() != dims + 2:
        raise ValueError(
            f"{module} expects a {dims + 2}-D input (N, C, *spatial) with {channels} channels "
            f"(dims={dims}), got a {x.dim()}-D tensor of shape {list(x.shape)}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{module} was built for {channels} channels, got an input with {x.shape[1]} channels "
            f"(shape {list(x.shape)})"
        )
    for size in x.shape[2:]:
        if size == 0:
            raise ValueError(f"{module} needs every spatial size to be positive, got shape {list(x.shape)}")

"""Verification: the exported file against eager PyTorch on random inputs, with a tolerance that says why."""

from __future__ import annotations

import copy
import math
import numbers
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..io import one_line
from ._errors import ExportError, VerificationError
from ._report import Check


def input_shape(model: nn.Module, input_size: Any, batch: int) -> tuple[int, int, int, int]:
    """The (N, C, H, W) to trace at: ``input_size`` is S, (H, W) or (C, H, W); ``None``: the model's own.

    Raises:
        ValueError: If the size is not positive integers (0, -1, nan, 2.5, a string, ...).
    """
    default = tuple(getattr(model, "default_input_size", (3, 224, 224)))
    if input_size is None:
        size: Sequence[Any] = default
    elif isinstance(input_size, numbers.Number):
        size = (default[0], input_size, input_size)
    elif isinstance(input_size, Sequence) and not isinstance(input_size, (str, bytes)) and len(input_size) in (2, 3):
        size = (default[0], *input_size) if len(input_size) == 2 else input_size
    else:
        raise ValueError(f"input_size must be S, (H, W) or (C, H, W), got {input_size!r}")
    bad = [s for s in size if isinstance(s, bool) or not isinstance(s, numbers.Real) or not _positive_int(s)]
    if bad:
        raise ValueError(f"the input size must be positive whole numbers, got {bad[0]!r}")
    c, h, w = (int(s) for s in size)
    return batch, c, h, w


def check_rtol(rtol: Any) -> float:
    """``rtol`` as a positive finite float.

    Raises:
        ValueError: Otherwise (0, a negative number, nan, inf, a string).
    """
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not (math.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be a positive number, got {rtol!r}")
    return float(rtol)


def _positive_int(value: numbers.Real) -> bool:
    return math.isfinite(value) and value > 0 and float(value).is_integer()


def second_size(size: int) -> int:
    """Another input size to run the file at: 32 -> 40, 224 -> 256 (the graph must not be tied to one)."""
    return size + (32 if size >= 128 else 8)


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(max |ours - ref|, the same divided by max |ref|).

    Relative to the largest output rather than element by element: logits near zero carry only rounding,
    and an element-wise ratio there measures nothing.
    """
    ours, ref = ours.double(), ref.double()
    if ours.shape != ref.shape:
        raise VerificationError(f"the exported file returns shape {tuple(ours.shape)}, PyTorch {tuple(ref.shape)}")
    if not torch.isfinite(ours).all() and torch.isfinite(ref).all():
        return math.inf, math.inf
    diff = (ours - ref).abs().max().item() if ref.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    return diff, diff / max(scale, 1e-30)


def random_input(shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """A reproducible standard-normal input of ``shape`` (float32)."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed))


def eager(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in eval mode on its own (fast) path, without autograd; the model's modes are restored."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            return _first_tensor(model(x))
    finally:
        for m, training in modes.items():
            m.training = training


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ExportError(f"the model returns {type(out).__name__}; export needs a model that returns one tensor")


def check_shapes(
    shape: tuple[int, int, int, int], dynamic_batch: bool, *, other_size: bool = True
) -> list[tuple[int, ...]]:
    """The input shapes to verify at: batch 1 and 3 with a dynamic batch (else the traced batch), at the
    traced size and (``other_size``) at a second one (``second_size``)."""
    n, c, h, w = shape
    batches = (1, 3) if dynamic_batch else (n,)
    shapes: list[tuple[int, ...]] = [(b, c, h, w) for b in batches]
    if other_size:
        shapes.append((batches[-1], c, second_size(h), second_size(w)))
    return shapes


def compare(
    model: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], shapes: Sequence[tuple[int, ...]], rtol: float
) -> list[Check]:
    """Runs the exported file (``run``) and eager PyTorch on the same random inputs of each shape.

    The first shape is the traced one; a later shape eager PyTorch itself cannot take (a network built for
    one input size) is left out.

    Raises:
        VerificationError: If a relative error exceeds ``rtol`` (or the file fails to run).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    checks = []
    for i, shape in enumerate(shapes):
        x = random_input(shape, seed=i).to(dtype)
        try:
            ref = eager(model, x.to(device)).cpu()
        except (RuntimeError, ValueError):
            if i == 0:
                raise
            continue
        try:
            ours = run(x)
        except Exception as e:  # onnxruntime / TorchScript raise their own types
            size = "x".join(map(str, shape))
            raise VerificationError(f"the exported file fails on a {size} input: {one_line(e)}") from None
        abs_err, rel_err = relative_error(ours, ref)
        check = Check(tuple(shape), abs_err, rel_err)
        if not rel_err <= rtol:
            raise VerificationError(
                f"the exported file disagrees with PyTorch on a {'x'.join(map(str, shape))} input: max relative "
                f"error {rel_err:.3g} > {rtol:g} (max abs error {abs_err:.3g}){_conditioning(model, x, ref, rtol)}"
            )
        checks.append(check)
    return checks


def _conditioning(model: nn.Module, x: torch.Tensor, ref: torch.Tensor, rtol: float) -> str:
    """A hint when PyTorch's own float32 result is far from float64: the network amplifies rounding at
    these weights (e.g. a deep network at random initialisation), and no float32 file can do better."""
    if ref.dtype != torch.float32:
        return ""
    try:
        exact = eager(copy.deepcopy(model).to(device="cpu", dtype=torch.float64), x.double())
    except (RuntimeError, ValueError, MemoryError):
        return ""
    own = relative_error(ref, exact)[1]
    if own < rtol / 10:
        return ""
    return (
        f"; PyTorch's own float32 output is {own:.3g} from float64 here, so the network amplifies rounding "
        "at these weights: allow more (rtol / --rtol)"
    )


def timer() -> Callable[[], float]:
    start = time.perf_counter()
    return lambda: time.perf_counter() - start

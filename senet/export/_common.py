"""What both exporters share: the export-time model state, input shapes, verification, atomic writes."""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import atomic_path, check_output_file, one_line

# Outputs of the exported file and of eager PyTorch agree to this relative error (see ``relative_error``).
# Both run float32, but with different kernels (onnxruntime's MLAS or TorchScript's fused graph vs eager
# oneDNN/ATen), which sum in different orders: each layer's rounding (float32 epsilon 6e-8, grown by the
# square root of a convolution's 10^3..10^4 terms) compounds over the layers. Measured: 1e-7..2e-6 for
# every family (docs/export.md); a real defect (a wrong weight, a dropped op, a size baked into the graph)
# shows as 1e-2 or more. A network that amplifies rounding at its weights needs more (``_conditioning``).
RTOL = 1e-4


class ExportError(ValueError):
    """An export that cannot be done or whose file does not compute what the model computes."""


class VerificationError(ExportError):
    """The exported file's outputs differ from eager PyTorch's by more than the tolerance."""


class MissingDependencyError(ImportError):
    """An optional package an export needs is not installed (the message says what to install)."""


ONNX_EXTRA_HINT = "pip install 'senet[onnx]'"
_FORCE = "--force (force=True)"  # how the messages name replacing a file: the CLI's option, the library's argument


@dataclass(frozen=True)
class Check:
    """One verification run: the exported file and eager PyTorch on the same random input."""

    input_shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float

    def __str__(self) -> str:
        return f"{'x'.join(map(str, self.input_shape))}: max relative error {self.max_rel_error:.2e}"


@dataclass
class ExportReport:
    """What an export wrote and how it was verified.

    Attributes:
        path: The file written.
        format: 'onnx' or 'torchscript'.
        input_shape: The (N, C, H, W) the model was traced at.
        dynamic_batch: Whether the batch dimension is free (ONNX: a named dimension ``batch``).
        opset: The ONNX opset (``None`` for TorchScript).
        method: How the graph was captured (``torch.onnx.export(dynamo=False)`` or ``torch.jit.trace``).
        fixed_size_reason: ONNX only: why the file takes only the traced height and width (``None``: they
            are free, named ``height`` and ``width``), e.g. VGG's adaptive pooling to 7x7, which ONNX
            cannot express for a free input size.
        fast_path_fallback: How many SE modules ran their textbook path instead of their fast path while
            exporting (the same function; see ``export_mode``).
        verified: Whether the file was run and compared with eager PyTorch.
        not_verified_reason: Why not, when ``verified`` is False.
        checks: One entry per verification run (batch sizes 1 and 3 with a dynamic batch; a second input size).
        tolerance: The relative error the checks were held to.
        ops: ONNX only: how many nodes of each op type the graph has.
        size_bytes: The file's size.
        seconds: Wall time of the export and its verification.
    """

    path: Path
    format: str
    input_shape: tuple[int, ...]
    dynamic_batch: bool
    opset: int | None
    method: str
    fast_path_fallback: int = 0
    fixed_size_reason: str | None = None
    verified: bool = False
    not_verified_reason: str | None = None
    checks: list[Check] = field(default_factory=list)
    tolerance: float = RTOL
    ops: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    seconds: float = 0.0

    @property
    def max_rel_error(self) -> float | None:
        """The largest relative error over all checks (``None`` when not verified)."""
        return max((c.max_rel_error for c in self.checks), default=None)

    def summary(self) -> str:
        """A few lines for the command line."""
        what = f"ONNX opset {self.opset}" if self.format == "onnx" else "TorchScript"
        shape = "x".join(["N" if self.dynamic_batch else str(self.input_shape[0]), *map(str, self.input_shape[1:])])
        size = f"{self.size_bytes / 2**20:.1f} MiB"
        lines = [f"wrote {self.path} ({what}, {size}, traced at {shape}, {self.seconds:.1f} s)"]
        if self.fixed_size_reason:
            lines.append(f"  fixed input size {shape}: with a free size the exporter fails ({self.fixed_size_reason})")
        if self.fast_path_fallback:
            lines.append(f"  {self.fast_path_fallback} SE module(s) exported on their textbook path (same outputs)")
        if self.verified:
            lines.append(f"  verified against PyTorch (tolerance {self.tolerance:g} relative):")
            lines += [f"    {c}" for c in self.checks]
        else:
            lines.append(f"  not verified: {self.not_verified_reason}")
        return "\n".join(lines)


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


def fast_modules(model: nn.Module) -> list[nn.Module]:
    """The modules with a ``fast`` switch that is on: SE's fused/matrix-product path (``senet.layers``)."""
    return [m for m in model.modules() if isinstance(getattr(m, "fast", None), bool) and m.fast]


@contextlib.contextmanager
def export_mode(model: nn.Module) -> Iterator[int]:
    """Puts ``model`` in eval mode for the duration (restoring each module's mode afterwards).

    Nothing of SE is patched here: each SE module owns its export form (``SqueezeExcite.forward`` and
    ``excite`` take the textbook path, a mean over H, W, 1x1 convolutions, the gate, a multiply, when
    traced, and the fused residual blocks their plain formula), so the file is not tied to one input size.
    Verification then compares the file with the model as given, fast path included.

    Yields:
        The number of SE modules whose fast path the trace replaces by their export form.
    """
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        yield len(fast_modules(model))
    finally:
        for m, training in modes.items():
            m.training = training


@contextlib.contextmanager
def quiet_tracing() -> Iterator[None]:
    """Silences the tracer's warnings about Python values taken from shapes (the checks that follow verify
    the file at other batch and input sizes, which is what those warnings are about)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated.*", category=DeprecationWarning)
        yield


def check_out(path: Path, force: bool) -> Path:
    """The output file, checked before any work (``senet.io.check_output_file``; the library's callers
    replace a file with ``force=True``).

    Raises:
        IsADirectoryError: If it is a folder.
        FileNotFoundError: If its folder does not exist.
        FileExistsError: If it exists and ``force`` is not set.
    """
    return check_output_file(path, force, force_option=_FORCE)


def write_verified(path: Path, force: bool, write: Callable[[Path], None], verify: Callable[[Path], None]) -> None:
    """Writes through a temporary file beside ``path``, verifies it, then moves it into place.

    A failed export or verification leaves no file at ``path`` (and an existing one untouched).
    """
    with atomic_path(path) as tmp:
        write(tmp)
        verify(tmp)
        if path.exists() and not force:  # appeared while exporting
            raise FileExistsError(f"{path} exists; add {_FORCE} to replace it")


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

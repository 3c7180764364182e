"""What an export wrote and how it was verified: ``ExportReport`` and its ``Check`` runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Outputs of the exported file and of eager PyTorch agree to this relative error (see ``relative_error``).
# Both run float32, but with different kernels (onnxruntime's MLAS or TorchScript's fused graph vs eager
# oneDNN/ATen), which sum in different orders: each layer's rounding (float32 epsilon 6e-8, grown by the
# square root of a convolution's 10^3..10^4 terms) compounds over the layers. Measured: 1e-7..2e-6 for
# every family (docs/export.md); a real defect (a wrong weight, a dropped op, a size baked into the graph)
# shows as 1e-2 or more. A network that amplifies rounding at its weights needs more (``_conditioning``).
RTOL = 1e-4


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

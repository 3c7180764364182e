"""TorchScript export through ``torch.jit.trace``, verified by reloading the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import one_line
from ._errors import ExportError, VerificationError
from ._mode import export_mode, quiet_tracing
from ._report import RTOL, ExportReport
from ._verify import check_rtol, check_shapes, compare, input_shape, random_input, timer
from ._writing import check_out, write_verified

METHOD = "torch.jit.trace"


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    *,
    input_size: Any = None,
    dynamic_batch: bool = False,
    verify: bool = True,
    force: bool = False,
    rtol: float = RTOL,
) -> ExportReport:
    """Exports ``model`` as a traced TorchScript file, reloaded and compared with eager PyTorch.

    Traced, not scripted: in eval mode the networks' forward passes have no data-dependent control flow,
    so a trace records them exactly, while scripting would need every forward (Python-level input checks,
    ``getattr`` dispatch, arbitrary callables as gates) to be TorchScript-typed and cannot compile SE's
    fused ``autograd.Function``. The trace runs on SE's textbook path (see ``export_mode``) and records
    sizes as graph operations, so the file takes other batch and input sizes; verification checks that.

    Args:
        model: The network (one (N, C, H, W) tensor in, one tensor out).
        path: The file to write (``torch.jit.load`` reads it; atomically, as ``export_onnx``).
        input_size: S, (H, W) or (C, H, W) to trace at; default the model's ``default_input_size``.
        dynamic_batch: Verify batch sizes 1 and 3 (a traced file takes any batch; this checks it).
        verify: Reload the file and compare it with eager PyTorch at the traced shape, the other batch
            size and a second input size.
        force: Replace an existing ``path``.
        rtol: The relative error verification allows.

    Returns:
        An ``ExportReport``.

    Raises:
        FileExistsError: If ``path`` exists and ``force`` is not set.
        FileNotFoundError: If ``path``'s folder does not exist.
        ValueError: On an invalid input size or ``rtol``.
        ExportError: If tracing fails.
        VerificationError: If the reloaded file's outputs differ from PyTorch's by more than ``rtol``.
    """
    elapsed = timer()
    rtol = check_rtol(rtol)
    path = check_out(Path(path), force)
    shape = input_shape(model, input_size, 2 if dynamic_batch else 1)
    report = ExportReport(path, "torchscript", shape, dynamic_batch, None, METHOD, tolerance=rtol)
    if not verify:
        report.not_verified_reason = "verification was switched off"

    def write(tmp: Path) -> None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        x = random_input(shape).to(device=device, dtype=dtype)
        with export_mode(model) as switched, quiet_tracing(), torch.no_grad():
            try:
                traced = torch.jit.trace(model, (x,), check_trace=False)
            except (RuntimeError, TypeError, ValueError) as e:
                raise ExportError(f"torch.jit.trace failed: {one_line(e)}") from None
            torch.jit.save(traced, str(tmp))  # the trace shares the model's tensors: saved as traced
        report.fast_path_fallback = switched

    def check(tmp: Path) -> None:
        if not verify:
            return
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        try:
            with quiet_tracing():
                loaded = torch.jit.load(str(tmp), map_location=device).eval()
        except RuntimeError as e:
            raise VerificationError(f"the TorchScript file cannot be reloaded: {one_line(e)}") from None

        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                out = loaded(x.to(device))
            return (out[0] if isinstance(out, (tuple, list)) else out).cpu()

        report.checks = compare(model, run, check_shapes(shape, dynamic_batch), rtol)
        report.verified = True

    write_verified(path, force, write, check)
    report.size_bytes = path.stat().st_size
    report.seconds = elapsed()
    return report

"""ONNX export through ``torch.onnx.export(..., dynamo=False)``, verified with onnxruntime."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..io import one_line
from ..layers import SqueezeExcite
from ._errors import ONNX_EXTRA_HINT, ExportError, MissingDependencyError, VerificationError
from ._mode import export_mode, quiet_tracing
from ._report import RTOL, ExportReport
from ._verify import check_rtol, check_shapes, compare, input_shape, random_input, timer
from ._writing import check_out, write_verified

MIN_OPSET = 17
# The TorchScript-based exporter's newest opset (torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET).
MAX_OPSET = 20
METHOD = "torch.onnx.export(dynamo=False) (TorchScript-based exporter)"
INPUT, OUTPUT = "input", "output"
# Ops an average squeeze may export as: a mean over H, W (ReduceMean) or GlobalAveragePool; never a
# fixed-size AveragePool or a ReduceSum with a baked 1/(H*W).
SQUEEZE_OPS = ("ReduceMean", "GlobalAveragePool")


def require(module: str) -> ModuleType:
    """Imports an optional package of the onnx extra.

    Raises:
        MissingDependencyError: Naming the extra to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"ONNX export needs the onnx extra ({module} is not installed): {ONNX_EXTRA_HINT}"
        ) from None


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_size: Any = None,
    dynamic_batch: bool = False,
    opset: int = MIN_OPSET,
    verify: bool = True,
    force: bool = False,
    rtol: float = RTOL,
) -> ExportReport:
    """Exports ``model`` to an ONNX file, verified against eager PyTorch with onnxruntime.

    The model is exported in eval mode, its SE modules on their textbook path (the same function in
    standard ops; see ``senet.export.export_mode``), with the height and width of the input free (named
    ``height`` and ``width``): SE's squeeze is a mean over them, so the file runs at any input size the
    network takes. The model itself is left as it was.

    Args:
        model: The network (any ``nn.Module`` taking one (N, C, H, W) tensor, returning one tensor).
        path: The ``.onnx`` file to write (atomically: a temporary file beside it, renamed into place once
            verified; a failed export or verification leaves no file).
        input_size: The input to trace at: S, (H, W) or (C, H, W); default the model's
            ``default_input_size`` (3, 224, 224 for most; 32 x 32 for the CIFAR networks).
        dynamic_batch: Leave the batch dimension free (named ``batch``); verification then runs batch
            sizes 1 and 3. Otherwise the file takes batch 1.
        opset: The ONNX opset, 17 to 20.
        verify: Run the file with onnxruntime (when installed) at the traced shape, the other batch size
            and a second input size, and compare with eager PyTorch (fast path included).
        force: Replace an existing ``path``.
        rtol: The relative error verification allows (max |ours - torch| / max |torch|).

    Returns:
        An ``ExportReport`` (op counts, checks and their errors).

    Raises:
        MissingDependencyError: If the ``onnx`` package is not installed.
        FileExistsError: If ``path`` exists and ``force`` is not set.
        FileNotFoundError: If ``path``'s folder does not exist.
        ValueError: On an invalid input size, opset or ``rtol``.
        ExportError: If the exporter fails or the graph's SE squeeze is not a global mean.
        VerificationError: If the file's outputs differ from PyTorch's by more than ``rtol``.
    """
    elapsed = timer()
    onnx = require("onnx")
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}")
    rtol = check_rtol(rtol)
    path = check_out(Path(path), force)
    shape = input_shape(model, input_size, 2 if dynamic_batch else 1)
    report = ExportReport(path, "onnx", shape, dynamic_batch, opset, METHOD, tolerance=rtol)
    ort = _onnxruntime() if verify else None
    if not verify:
        report.not_verified_reason = "verification was switched off"
    elif ort is None:
        report.not_verified_reason = f"onnxruntime is not installed ({ONNX_EXTRA_HINT})"

    def write(tmp: Path) -> None:
        report.fast_path_fallback, report.fixed_size_reason = _export(model, tmp, shape, dynamic_batch, opset)
        proto = onnx.load(str(tmp))
        try:
            onnx.checker.check_model(proto)
        except Exception as e:  # onnx.checker.ValidationError and friends
            raise ExportError(f"the exported graph is not valid ONNX: {one_line(e)}") from None
        report.ops = dict(sorted(Counter(node.op_type for node in proto.graph.node).items()))
        check_squeeze(proto, model)

    def check(tmp: Path) -> None:
        if ort is None:
            return
        try:
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch uses
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own error types
            raise VerificationError(f"onnxruntime cannot load the exported file: {one_line(e)}") from None
        run = lambda x: torch.from_numpy(session.run(None, {INPUT: x.numpy()})[0])
        shapes = check_shapes(shape, dynamic_batch, other_size=report.fixed_size_reason is None)
        report.checks = compare(model, run, shapes, rtol)
        report.verified = True

    write_verified(path, force, write, check)
    report.size_bytes = path.stat().st_size
    report.seconds = elapsed()
    return report


def _onnxruntime() -> ModuleType | None:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError:
        return None


def _export(
    model: nn.Module, path: Path, shape: tuple[int, ...], dynamic_batch: bool, opset: int
) -> tuple[int, str | None]:
    """Runs the exporter with the input's height and width free, else (a network whose head has no ONNX
    form for a free size, e.g. VGG's adaptive pooling to 7x7) fixed.

    Returns:
        How many SE modules left their fast path for it, and why the size is fixed (``None``: it is free).
    """
    try:
        return _export_once(model, path, shape, dynamic_batch, opset, free_size=True), None
    except ExportError as e:
        why = str(e).removeprefix("torch.onnx.export failed: ")
    return _export_once(model, path, shape, dynamic_batch, opset, free_size=False), why


def _export_once(
    model: nn.Module, path: Path, shape: tuple[int, ...], dynamic_batch: bool, opset: int, free_size: bool
) -> int:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    x = random_input(shape).to(device=device, dtype=dtype)
    axes = {0: "batch"} if dynamic_batch else {}
    if free_size:
        axes.update({2: "height", 3: "width"})
    dynamic_axes = {INPUT: axes, OUTPUT: {0: "batch"}} if dynamic_batch else {INPUT: axes}
    log_enabled = torch._C._jit_is_onnx_log_enabled()
    with export_mode(model) as switched, quiet_tracing(), torch.no_grad(), _stderr_hidden():
        torch._C._jit_set_onnx_log_output_stream("stderr")  # its default is stdout (C++ std::cout)
        try:
            torch.onnx.export(
                model, (x,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT],
                output_names=[OUTPUT], dynamic_axes=dynamic_axes or None, do_constant_folding=True,
            )  # fmt: skip
        except (RuntimeError, TypeError, ValueError, torch.onnx.errors.OnnxExporterError) as e:
            raise ExportError(f"torch.onnx.export failed: {one_line(e)}") from None
        finally:
            # torch 2.13's exporter switches its C++ log on and leaves it on (it tests the function
            # ``_jit_is_onnx_log_enabled`` for truth instead of calling it).
            torch._C._jit_set_onnx_log_enabled(log_enabled)
            torch._C._jit_set_onnx_log_output_stream("stdout")
    return switched


@contextlib.contextmanager
def _stderr_hidden() -> Iterator[None]:
    """Sends file descriptor 2 to an anonymous temporary file: on a failure the exporter's C++ side prints
    the whole TorchScript graph to its log (sent to stderr here), which the one-line error replaces."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as f:
            os.dup2(f.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def se_scopes(proto: Any, model: nn.Module) -> dict[str, str]:
    """The node-name prefix of each average-squeeze SE module in the exported graph, by module path.

    The exporter names a node after its module's scope (``/layer1/layer1.0/se/ReduceMean``); the scope
    of an SE module is read off the node that takes its ``fc1.weight`` (``/layer1/layer1.0/se/fc1/Conv``).
    Modules whose weight no node takes by name are left out.
    """
    weights = {
        f"{name}.fc1.weight": name
        for name, m in model.named_modules()
        if isinstance(m, SqueezeExcite) and m.squeeze_mode == "avg" and name
    }
    scopes = {}
    for node in proto.graph.node:
        for name in node.input:
            if name in weights and "/fc1/" in node.name:
                scopes[weights[name]] = node.name.rsplit("/fc1/", 1)[0] + "/"
    return scopes


def squeeze_nodes(proto: Any, model: nn.Module) -> dict[str, list[str]]:
    """The op types of each SE module's own nodes in the exported graph (not its submodules'), by module
    path (see ``se_scopes``)."""
    found: dict[str, list[str]] = {}
    scopes = se_scopes(proto, model)
    for node in proto.graph.node:
        for path, scope in scopes.items():
            if node.name.startswith(scope) and "/" not in node.name[len(scope) :]:
                found.setdefault(path, []).append(node.op_type)
    return found


def check_squeeze(proto: Any, model: nn.Module) -> None:
    """Checks that every SE squeeze found in the graph is a global mean, not a size-bound pooling.

    Raises:
        ExportError: Naming the first SE module whose squeeze is an AveragePool, a ReduceSum or missing.
    """
    for path, ops in squeeze_nodes(proto, model).items():
        if not any(op in SQUEEZE_OPS for op in ops) or any(op in ("AveragePool", "ReduceSum") for op in ops):
            raise ExportError(
                f"the SE module {path} exported its squeeze as {', '.join(ops)}, not a global mean "
                f"({' or '.join(SQUEEZE_OPS)}): the file would be tied to one input size"
            )

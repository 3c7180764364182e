"""Export to ONNX and TorchScript, verified against eager PyTorch.

    >>> import senet
    >>> from senet.export import export_onnx
    >>> report = export_onnx(senet.create_model("se_cifar_resnet20"), "se_resnet20.onnx", dynamic_batch=True)
    >>> report.verified, report.max_rel_error < 1e-4
    (True, True)

Both exporters run the model in eval mode (``export_mode``); traced, each SE module takes its export form,
the textbook path (the fused fast path is a custom ``autograd.Function`` and folds the trace's H*W into a
constant, while the textbook path is a mean over H, W, two 1x1 convolutions and a multiply: standard ops,
not tied to one input size).
See docs/export.md.
"""

from ._errors import ExportError, MissingDependencyError, VerificationError
from ._mode import export_mode
from ._onnx import MAX_OPSET, MIN_OPSET, export_onnx
from ._report import RTOL, Check, ExportReport
from ._torchscript import export_torchscript
from ._verify import relative_error

FORMATS = ("onnx", "torchscript")

__all__ = [
    "FORMATS",
    "MAX_OPSET",
    "MIN_OPSET",
    "RTOL",
    "Check",
    "ExportError",
    "ExportReport",
    "MissingDependencyError",
    "VerificationError",
    "export_mode",
    "export_onnx",
    "export_torchscript",
    "relative_error",
]

"""What goes wrong in an export: the errors it raises, and how its messages name things."""

from __future__ import annotations


class ExportError(ValueError):
    """An export that cannot be done or whose file does not compute what the model computes."""


class VerificationError(ExportError):
    """The exported file's outputs differ from eager PyTorch's by more than the tolerance."""


class MissingDependencyError(ImportError):
    """An optional package an export needs is not installed (the message says what to install)."""


ONNX_EXTRA_HINT = "pip install 'senet[onnx]'"
_FORCE = "--force (force=True)"  # how the messages name replacing a file: the CLI's option, the library's argument

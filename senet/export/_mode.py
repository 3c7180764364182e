"""The model as it is exported: eval mode (SE takes its own export form when traced), quiet tracer."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn


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

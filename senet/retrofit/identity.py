"""Identity initialisation: an attention module that starts as the identity and still learns.

The construction (for the modules whose gate is one function of one last layer, ``SUPPORTED``): the
last layer (SE's ``fc2``: W2 and b2) is zero-initialised, so its output is z = 0 for every input, and
the gate sigma becomes 2 * sigma (``DoubledGate``), so that the gate is 2 * sigma(0) = 1 exactly and the
module returns its input unchanged, bit for bit (x * 1.0 == x). The choice is the zero-initialised last
layer of ControlNet's zero convolutions and LoRA's B = 0:

* the last layer gets a gradient from the first step: dL/dW2 = (dL/dz) h^T with h = delta(W1 z + b1)
  the hidden activation of the randomly initialised first layer, and dL/db2 = dL/dz;
* the first layer's gradient is defined (the autograd graph reaches it) but exactly zero at the first
  step, dL/dW1 = W2^T (...) = 0, and non-zero from the second, once a step has made W2 non-zero.

The alternative that gives every parameter a non-zero gradient at the first step (W1 = 0, b1 > 0,
W2 random and b2 = -W2 delta(b1), exact only for weights chosen on a dyadic grid) makes the first
layer carry no information about the input instead, and stops being exact in low precision.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import EffectiveSqueezeExcite, EfficientChannelAttention, SpatialSqueezeExcite, SqueezeExcite
from .gate import DoubledGate

# Attention class -> (its last layer, zero-initialised; its first layer, the one that reads the input).
SUPPORTED: dict[type, tuple[str, str]] = {
    SqueezeExcite: ("fc2", "fc1"),
    EfficientChannelAttention: ("conv", "conv"),
    EffectiveSqueezeExcite: ("fc", "fc"),
    SpatialSqueezeExcite: ("conv", "conv"),
}


def _layers(module: nn.Module) -> tuple[str, str]:
    for cls, names in SUPPORTED.items():
        if isinstance(module, cls):
            return names
    supported = ", ".join(sorted(getattr(c, "attention_name", c.__name__) for c in SUPPORTED))
    raise ValueError(
        f"identity_init supports the attention modules {supported}; {type(module).__name__} has no known "
        "last layer to zero (use identity_init=False)"
    )


def check_identity_init(module: nn.Module) -> None:
    """Raises a one-line ``ValueError`` unless ``identity_init`` can start ``module`` as the identity."""
    _layers(module)
    half = module.gate(torch.zeros(1, device="cpu"))  # on the CPU also under `with torch.device("meta")`
    if half.item() != 0.5:
        raise ValueError(
            f"identity_init needs a gate with gate(0) = 1/2 (sigmoid, hard_sigmoid); "
            f"{type(module).__name__}'s gives {half.item():g} (use identity_init=False)"
        )


def identity_init(module: nn.Module) -> nn.Module:
    """Zeroes ``module``'s last layer and doubles its gate, so that it returns its input unchanged.

    Args:
        module: An attention module of a ``SUPPORTED`` class whose gate g has g(0) = 1/2.

    Returns:
        ``module``, changed in place.

    Raises:
        ValueError: For another class or gate.
    """
    check_identity_init(module)
    last = getattr(module, _layers(module)[0])
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)
    module.gate = DoubledGate(module.gate)
    return module


def first_layer(module: nn.Module) -> nn.Module:
    """The layer of ``module`` that reads the attended tensor (SE's ``fc1``)."""
    return getattr(module, _layers(module)[1])

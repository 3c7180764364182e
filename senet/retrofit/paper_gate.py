"""Back to the paper's gate after fine-tuning, exactly: 2 sigma(z) u = sigma(z') u' with u' = 2u.

A retrofitted module computes y = 2 sigma(z(u)) u. The paper's block computes y = sigma(z(u)) u. The two
agree exactly once the factor 2 moves into a neighbouring linear layer:

* 'output' fold: u is the output of a convolution or an affine norm (possibly through a positively
  homogeneous activation, relu(2a) = 2 relu(a)). Doubling that layer's weight and bias makes it emit
  2u; halving the attention's first layer (SE's W1) keeps z(2u) = z(u) (the squeeze is linear); the
  paper's gate then gives sigma(z) 2u = 2 sigma(z) u. This covers 'standard', 'identity', 'after_3x3'
  and conv/norm layers.
* 'input' fold ('pre'): y feeds a convolution W. Doubling W (not its bias) gives W (sigma(z) u) * 2.

Every change is a multiplication by a power of two, which is exact in binary floating point (barring
overflow), so the converted network computes the same outputs bit for bit, in eval and in training
mode (a batch norm's statistics are of its input, which does not change). 'post' has no such layer
(the attended tensor is a sum, and the layer after it is a nonlinearity): it is refused.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .gate import DoubledGate
from .hooks import attention_hooks
from .identity import first_layer
from .layers import CONVS, folds_exactly


def _check_fold(label: str, module: nn.Module, side: str) -> None:
    if side == "input" and isinstance(module, CONVS):
        return
    if side == "output" and folds_exactly(module):
        return
    raise ValueError(f"{label}: {type(module).__name__} cannot take the factor 2 of the doubled gate exactly")


def to_paper_gate(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replaces every doubled gate 2 sigma of a retrofitted ``model`` by the paper's sigma, exactly.

    Args:
        model: A model returned by ``retrofit(..., identity_init=True)``, fine-tuned or not.
        inplace: Change ``model`` itself instead of a copy.

    Returns:
        The model with the paper's gates, computing the same function (see the module docstring).

    Raises:
        ValueError: (one line) If the model has no doubled gate, or a module sits where no layer can take
            the factor 2 ('post'). Nothing is changed then.
    """
    if not inplace:
        model = copy.deepcopy(model)
    hooks = [h for _, h in attention_hooks(model) if isinstance(getattr(h.attention, "gate", None), DoubledGate)]
    if not hooks:
        raise ValueError(f"{type(model).__name__} has no retrofitted attention with a doubled gate")
    for hook in hooks:
        label = getattr(hook.attention, "attention_label", hook.name)
        if hook.fold is None:
            raise ValueError(
                f"{label}: no layer next to it can take the doubled gate's factor 2 exactly "
                "(placement 'post', or 'pre' before a norm layer)"
            )
        _check_fold(label, hook.fold.module, hook.fold.side)
    targets = [id(h.fold.module) for h in hooks]
    if len(set(targets)) != len(targets):
        raise ValueError("two attention modules would fold their factor 2 into the same layer")
    with torch.no_grad():
        for hook in hooks:
            attention, target = hook.attention, hook.fold.module
            target.weight.mul_(2)
            if hook.fold.side == "output":
                if target.bias is not None:
                    target.bias.mul_(2)
                first_layer(attention).weight.mul_(0.5)  # it now reads 2u
            attention.gate = attention.gate.gate
    return model

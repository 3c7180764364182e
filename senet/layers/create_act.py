"""Activation and gate functions by name.

Attention modules take their nonlinearities as a name, an ``nn.Module`` class or instance, or any
callable. Names are resolved here, once, so that every module accepts the same vocabulary and fails
the same way on a typo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch
from torch import nn

ActLike = Union[str, nn.Module, type, Callable[[torch.Tensor], torch.Tensor], None]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "gelu": lambda: nn.GELU(),
    "mish": lambda: nn.Mish(inplace=True),
    "hard_swish": lambda: nn.Hardswish(inplace=True),
    "sigmoid": lambda: nn.Sigmoid(),
    "hard_sigmoid": lambda: nn.Hardsigmoid(),
    "tanh": lambda: nn.Tanh(),
    "identity": lambda: nn.Identity(),
}

# Gates map the excitation to per-channel weights. 'sigmoid' is the paper's choice; 'tanh' and 'relu'
# are its ablation (Table 11 of the TPAMI version); 'hard_sigmoid' is relu6(x + 3) / 6 as in
# MobileNetV3 and effective SE.
_GATES: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": lambda: nn.Sigmoid(),
    "hard_sigmoid": lambda: nn.Hardsigmoid(),
    "tanh": lambda: nn.Tanh(),
    "relu": lambda: nn.ReLU(),
    "identity": lambda: nn.Identity(),
}


class Lambda(nn.Module):
    """Wraps a plain function as a module (not TorchScript-able; use a module for scripting)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))


def _resolve(spec: ActLike, table: dict[str, Callable[[], nn.Module]], kind: str) -> nn.Module:
    if spec is None:
        return nn.Identity()
    if isinstance(spec, str):
        key = spec.lower().replace("-", "_")
        if key not in table:
            raise ValueError(f"unknown {kind} {spec!r}; valid names: {', '.join(sorted(table))}")
        return table[key]()
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        return spec()
    if callable(spec):
        return Lambda(spec)
    raise ValueError(f"{kind} must be a name, an nn.Module or a callable, got {type(spec).__name__}")


def create_act(spec: ActLike) -> nn.Module:
    """Returns the activation module for ``spec``.

    Args:
        spec: A name (``'relu'``, ``'silu'``, ``'gelu'``, ``'hard_swish'``, ...), an ``nn.Module``
            instance or class, a callable, or ``None`` for the identity.

    Returns:
        An ``nn.Module`` applying the activation.

    Raises:
        ValueError: If the name is unknown or ``spec`` is of an unusable type.
    """
    return _resolve(spec, _ACTIVATIONS, "activation")


def create_gate(spec: ActLike) -> nn.Module:
    """Returns the gate module for ``spec`` (``'sigmoid'``, ``'hard_sigmoid'``, ``'tanh'``, ``'relu'``).

    Args:
        spec: A gate name, an ``nn.Module`` instance or class, or a callable.

    Returns:
        An ``nn.Module`` mapping excitations to weights.

    Raises:
        ValueError: If the name is unknown or ``spec`` is of an unusable type.
    """
    return _resolve(spec, _GATES, "gate")


def list_activations() -> list[str]:
    """Returns the activation names ``create_act`` accepts."""
    return sorted(_ACTIVATIONS)


def list_gates() -> list[str]:
    """Returns the gate names ``create_gate`` accepts."""
    return sorted(_GATES)

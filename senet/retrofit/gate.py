"""The identity-start gate: 2 * g(z) for a gate g with g(0) = 1/2 (the sigmoid, the hard sigmoid).

An attention module whose last layer is zero-initialised computes z = 0 for every input; with the
paper's sigma its gate would be sigma(0) = 1/2 and would halve every feature map it scales. Doubling the
gate gives 2 * sigma(0) = 1 exactly (0.5 and 2 are powers of two), so the retrofitted network starts
computing exactly what it computed before, while the gate keeps the paper's shape and its derivative
(2 * sigma'(0) = 1/2, not 0) lets gradients through from the first step. ``senet.retrofit.to_paper_gate``
folds the factor 2 back into the network after fine-tuning.
"""

from __future__ import annotations

from torch import Tensor, nn


class DoubledGate(nn.Module):
    """The gate 2 * g(z), range (0, 2), equal to 1 at z = 0 when g(0) = 1/2.

    Args:
        gate: The wrapped gate module g (``nn.Sigmoid`` or ``nn.Hardsigmoid``).
    """

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.gate = gate

    def forward(self, z: Tensor) -> Tensor:
        return 2 * self.gate(z)  # (N, C): exactly 1 where z == 0

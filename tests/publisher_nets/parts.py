"""The pieces the publishers' networks share: timm's and torchvision's SE module (1x1 convolutions),
the MobileNet width rounding, BatchNorm with a given eps.
"""

from __future__ import annotations

from torch import Tensor, nn


class SE(nn.Module):
    """SE with 1x1-conv ``fc1``/``fc2`` (bias), ``act`` between them and ``gate`` on the output."""

    def __init__(self, channels: int, hidden: int, act: nn.Module, gate: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = act
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = gate

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


def round_to(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    # The MobileNet width rounding (torchvision's _make_divisible, timm's make_divisible).
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < round_limit * v else out


def bn2d(channels: int, eps: float = 1e-5) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps)

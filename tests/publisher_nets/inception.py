"""Inception-ResNet-v2, the TF-slim port (timm's and Cadene's): BN eps 1e-3, the last C block without ReLU."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class _Conv(nn.Module):
    # BasicConv2d: conv (no bias), BN eps 1e-3, ReLU.
    def __init__(self, cin: int, cout: int, k: int | tuple[int, int], stride: int = 1, padding: object = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class _Concat(nn.Module):
    # A module whose children branch0, branch1, ... all read the input; outputs concatenated.
    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([m(x) for m in self.children()], 1)


class _Mixed5b(_Concat):
    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _Conv(192, 96, 1)
        self.branch1 = nn.Sequential(_Conv(192, 48, 1), _Conv(48, 64, 5, padding=2))
        self.branch2 = nn.Sequential(_Conv(192, 64, 1), _Conv(64, 96, 3, padding=1), _Conv(96, 96, 3, padding=1))
        self.branch3 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _Conv(192, 64, 1))


class _Mixed6a(_Concat):
    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _Conv(320, 384, 3, 2)
        self.branch1 = nn.Sequential(_Conv(320, 256, 1), _Conv(256, 256, 3, padding=1), _Conv(256, 384, 3, 2))
        self.branch2 = nn.MaxPool2d(3, 2)


class _Mixed7a(_Concat):
    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(_Conv(1088, 256, 1), _Conv(256, 384, 3, 2))
        self.branch1 = nn.Sequential(_Conv(1088, 256, 1), _Conv(256, 288, 3, 2))
        self.branch2 = nn.Sequential(_Conv(1088, 256, 1), _Conv(256, 288, 3, padding=1), _Conv(288, 320, 3, 2))
        self.branch3 = nn.MaxPool2d(3, 2)


class _ResidualInception(nn.Module):
    # Block35 / Block17 / Block8: y = act(x + scale * conv2d(concat(branches))).
    def __init__(self, kind: str, scale: float, relu: bool = True) -> None:
        super().__init__()
        self.scale, self.relu = scale, relu
        if kind == "35":
            c = 320
            self.branch0 = _Conv(320, 32, 1)
            self.branch1 = nn.Sequential(_Conv(320, 32, 1), _Conv(32, 32, 3, padding=1))
            self.branch2 = nn.Sequential(_Conv(320, 32, 1), _Conv(32, 48, 3, padding=1), _Conv(48, 64, 3, padding=1))
            mid = 128
        elif kind == "17":
            c = 1088
            self.branch0 = _Conv(1088, 192, 1)
            self.branch1 = nn.Sequential(
                _Conv(1088, 128, 1), _Conv(128, 160, (1, 7), padding=(0, 3)), _Conv(160, 192, (7, 1), padding=(3, 0))
            )
            mid = 384
        else:
            c = 2080
            self.branch0 = _Conv(2080, 192, 1)
            self.branch1 = nn.Sequential(
                _Conv(2080, 192, 1), _Conv(192, 224, (1, 3), padding=(0, 1)), _Conv(224, 256, (3, 1), padding=(1, 0))
            )
            mid = 448
        self.conv2d = nn.Conv2d(mid, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        branches = [m(x) for name, m in self.named_children() if name.startswith("branch")]
        out = self.conv2d(torch.cat(branches, 1)) * self.scale + x
        return F.relu(out) if self.relu else out


class InceptionResNetV2(nn.Module):
    """The TF-slim Inception-ResNet-v2 port (timm's naming: classifier ``classif``).

    Args:
        head: 'global' (timm: global average) or 'cadene' (``AvgPool2d(8, count_include_pad=False)``).
        blocks: The numbers of A, B and C blocks before ``block8`` (the publishers': 10, 20 and 9); our
            ``blocks`` option counts ``block8`` among the C blocks.
    """

    def __init__(self, head: str = "global", blocks: tuple[int, int, int] = (10, 20, 9)) -> None:
        super().__init__()
        self.conv2d_1a = _Conv(3, 32, 3, 2)
        self.conv2d_2a = _Conv(32, 32, 3)
        self.conv2d_2b = _Conv(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, 2)
        self.conv2d_3b = _Conv(64, 80, 1)
        self.conv2d_4a = _Conv(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, 2)
        self.mixed_5b = _Mixed5b()
        self.repeat = nn.Sequential(*[_ResidualInception("35", 0.17) for _ in range(blocks[0])])
        self.mixed_6a = _Mixed6a()
        self.repeat_1 = nn.Sequential(*[_ResidualInception("17", 0.10) for _ in range(blocks[1])])
        self.mixed_7a = _Mixed7a()
        self.repeat_2 = nn.Sequential(*[_ResidualInception("8", 0.20) for _ in range(blocks[2])])
        self.block8 = _ResidualInception("8", 1.0, relu=False)  # Block8(noReLU=True): scale left at 1.0
        self.conv2d_7b = _Conv(2080, 1536, 1)
        self.head = head
        self.classif = nn.Linear(1536, 1000)

    def forward(self, x: Tensor) -> Tensor:
        for m in self.children():
            if m is self.classif:
                break
            x = m(x)
        x = F.avg_pool2d(x, 8, count_include_pad=False).flatten(1) if self.head == "cadene" else x.mean((2, 3))
        return self.classif(x)

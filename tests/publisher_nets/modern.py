"""torchvision's and timm's ResNets (stride in the 3x3, stem max pool with padding 1), timm's SE after ``bn3``."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .parts import SE, bn2d, round_to


class _ModernBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, down: nn.Module | None, se: bool, **_: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = bn2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = bn2d(planes)
        self.se = SE(planes, round_to(planes / 16, 8, 0.0), nn.ReLU(), nn.Sigmoid()) if se else None
        self.downsample = down

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        y = y if self.se is None else self.se(y)
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class _ModernBottleneck(nn.Module):
    def __init__(
        self, inplanes: int, planes: int, stride: int, down: nn.Module | None, se: bool, groups: int, base_width: int
    ):
        super().__init__()
        width = int(planes * base_width / 64) * groups
        out = planes * 4
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = bn2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)  # "v1.5"
        self.bn2 = bn2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = bn2d(out)
        # timm's SEModule: hidden = make_divisible(C / 16, 8) with round_limit 0.
        self.se = SE(out, round_to(out / 16, 8, 0.0), nn.ReLU(), nn.Sigmoid()) if se else None
        self.downsample = down

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        y = y if self.se is None else self.se(y)
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ModernResNet(nn.Module):
    """torchvision's ResNet/ResNeXt and timm's (SE-)ResNet/(SE-)ResNeXt: 7x7 stem, padded max pool, v1.5.

    Args:
        block: 'basic' or 'bottleneck'.
        layers: Blocks per stage.
        groups: Cardinality of the 3x3 convolutions.
        base_width: Width per group (64 for ResNet, 4 for ResNeXt 32x4d).
        se: timm's SE after ``bn3`` (``bn2`` in a basic block).
    """

    def __init__(
        self, block: str, layers: tuple[int, ...], groups: int = 1, base_width: int = 64, se: bool = False
    ) -> None:
        super().__init__()
        make = _ModernBasicBlock if block == "basic" else _ModernBottleneck
        expansion = 1 if block == "basic" else 4
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = bn2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, n in enumerate(layers):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes * expansion:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes * expansion, 1, stride, bias=False), bn2d(planes * expansion)
                )
            blocks = []
            for b in range(n):
                blocks.append(
                    make(inplanes, planes, stride if b == 0 else 1, down if b == 0 else None, se,
                         groups=groups, base_width=base_width)
                )
                inplanes = planes * expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(inplanes, 1000)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean((2, 3)))

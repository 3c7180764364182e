"""The SE authors' Caffe models as converted by Cadene (``pretrainedmodels``) and kept by timm (``legacy_se*``)."""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import Tensor, nn
from torch.nn import functional as F

from .parts import SE, bn2d


class _LegacyBottleneck(nn.Module):
    def __init__(self, kind: str, inplanes: int, planes: int, groups: int, stride: int, down: nn.Module | None):
        super().__init__()
        out = planes * 4
        if kind == "resnet":  # SEResNetBottleneck: the stride on conv1
            first, mid, s1, s2 = planes, planes, stride, 1
        elif kind == "resnext":  # SEResNeXtBottleneck, base width 4
            first = mid = math.floor(planes * 4 / 64) * groups
            s1, s2 = 1, stride
        else:  # SEBottleneck (SENet-154)
            first, mid, s1, s2 = planes * 2, planes * 4, 1, stride
        self.conv1 = nn.Conv2d(inplanes, first, 1, s1, bias=False)
        self.bn1 = bn2d(first)
        self.conv2 = nn.Conv2d(first, mid, 3, s2, 1, groups=groups, bias=False)
        self.bn2 = bn2d(mid)
        self.conv3 = nn.Conv2d(mid, out, 1, bias=False)
        self.bn3 = bn2d(out)
        self.relu = nn.ReLU()
        self.se_module = SE(out, out // 16, nn.ReLU(), nn.Sigmoid())
        self.downsample = down

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.se_module(y) + shortcut)


class _LegacyBasicBlock(nn.Module):
    # timm's SEResNetBlock: note the ReLU after bn2, before SE.
    def __init__(self, kind: str, inplanes: int, planes: int, groups: int, stride: int, down: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = bn2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, groups=groups, bias=False)
        self.bn2 = bn2d(planes)
        self.relu = nn.ReLU()
        self.se_module = SE(planes, planes // 16, nn.ReLU(), nn.Sigmoid())
        self.downsample = down

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.se_module(y) + shortcut)


class LegacySENet(nn.Module):
    """SE-ResNet / SE-ResNeXt / SENet-154 as the SE authors' converted Caffe models compute them.

    Args:
        kind: 'resnet' (SE-ResNet-50+), 'resnext' (SE-ResNeXt 32x4d), 'senet' (SENet-154) or 'basic'
            (timm's SE-ResNet-18/34).
        layers: Blocks per stage.
        head: 'global' (timm: global average) or 'cadene' (``AvgPool2d(7, stride=1)``: a 7x7 map only).
    """

    def __init__(self, kind: str, layers: tuple[int, ...], head: str = "global") -> None:
        super().__init__()
        groups = {"resnet": 1, "basic": 1, "resnext": 32, "senet": 64}[kind]
        block = _LegacyBasicBlock if kind == "basic" else _LegacyBottleneck
        expansion = 1 if kind == "basic" else 4
        if kind == "senet":
            stem = [
                ("conv1", nn.Conv2d(3, 64, 3, 2, 1, bias=False)), ("bn1", bn2d(64)), ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(64, 64, 3, 1, 1, bias=False)), ("bn2", bn2d(64)), ("relu2", nn.ReLU()),
                ("conv3", nn.Conv2d(64, 128, 3, 1, 1, bias=False)), ("bn3", bn2d(128)), ("relu3", nn.ReLU()),
            ]
            inplanes = 128
        else:
            stem = [("conv1", nn.Conv2d(3, 64, 7, 2, 3, bias=False)), ("bn1", bn2d(64)), ("relu1", nn.ReLU())]
            inplanes = 64
        self.layer0 = nn.Sequential(OrderedDict([*stem, ("pool", nn.MaxPool2d(3, 2, ceil_mode=True))]))
        for i, n in enumerate(layers):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes * expansion:
                k = 3 if kind == "senet" and i > 0 else 1  # SENet-154: 3x3 projections in layer2..4
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes * expansion, k, stride, k // 2, bias=False), bn2d(planes * expansion)
                )
            blocks = [block(kind, inplanes, planes, groups, stride, down)]
            inplanes = planes * expansion
            blocks += [block(kind, inplanes, planes, groups, 1, None) for _ in range(1, n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.head = head
        self.last_linear = nn.Linear(inplanes, 1000)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer0(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        x = F.avg_pool2d(x, 7, 1).flatten(1) if self.head == "cadene" else x.mean((2, 3))
        return self.last_linear(x)  # (dropout before it in SENet-154: identity in eval)

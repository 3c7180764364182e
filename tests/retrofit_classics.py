"""The first networks ``senet.retrofit`` was tested on, written here in their publishers' styles, not taken
from this library: torchvision's ResNet (one ReLU module called twice, ``out += identity``), MobileNetV2
(``x + self.conv(x)``), timm's bottleneck (``se = None``, drop path before the add), a pre-activation
block, a VGG-style stack, and a ResNet whose forward torch.fx cannot trace.
"""

from __future__ import annotations

import torch
from retrofit_nets import DropPath
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)  # called twice, as in torchvision
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class PlainResNet(nn.Module):
    def __init__(self, widths=(16, 32), num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(widths[0], widths[0]), BasicBlock(widths[0], widths[0]))
        self.layer2 = nn.Sequential(BasicBlock(widths[0], widths[1], 2), BasicBlock(widths[1], widths[1]))
        self.fc = nn.Linear(widths[1], num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class DynamicResNet(PlainResNet):
    """The same network with a forward that torch.fx cannot trace (control flow on a tensor's value)."""

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if x.sum() > -1e30:
            x = self.layer1(x)
        x = self.layer2(x)
        return self.fc(x.mean((2, 3)))


class ConvBNReLU(nn.Sequential):
    def __init__(self, inp, oup, kernel=3, stride=1, groups=1):
        super().__init__(
            nn.Conv2d(inp, oup, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(oup),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand):
        super().__init__()
        hidden = inp * expand
        self.use_res_connect = stride == 1 and inp == oup
        layers = [ConvBNReLU(inp, hidden, 1)] if expand != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class InvertedResidualNet(nn.Module):
    """MobileNetV2-shaped: 7 inverted residuals, 4 of them with a shortcut."""

    def __init__(self, num_classes=10):
        super().__init__()
        settings = [(16, 16, 1, 1), (16, 24, 2, 4), (24, 24, 1, 4), (24, 32, 2, 4), (32, 32, 1, 4), (32, 32, 1, 4)]
        blocks = [InvertedResidual(*s) for s in settings]
        self.features = nn.Sequential(ConvBNReLU(3, 16, 3, 2), *blocks, ConvBNReLU(32, 64, 1))
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class TimmBottleneck(nn.Module):
    """timm's layout: act1..act3, ``se = None`` read by forward, drop path before ``x += shortcut``."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        outplanes = planes * 4
        self.conv1, self.bn1, self.act1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2, self.act2 = nn.BatchNorm2d(planes), nn.ReLU()
        self.conv3, self.bn3 = nn.Conv2d(planes, outplanes, 1, bias=False), nn.BatchNorm2d(outplanes)
        self.se = None
        self.act3 = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != outplanes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes)
            )
        self.drop_path = DropPath(0.1)

    def forward(self, x):
        shortcut = x
        x = self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        return self.act3(x)


class PreActBlock(nn.Module):
    """Pre-activation: functional ReLUs, the branch ends in a convolution, the sum is the output."""

    def __init__(self, planes):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(planes), nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(planes), nn.Conv2d(planes, planes, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(torch.relu(self.bn1(x)))
        return torch.add(self.conv2(torch.relu(self.bn2(out))), x)


def vgg_style():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def randomise_norms(model):
    """Pretrained-looking batch norms, so that eval-mode outputs are not trivial."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model

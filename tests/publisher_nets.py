"""Reference networks: what each publisher's network computes, under the publisher's own state_dict keys.

Written for the conversion tests from a reading of each publisher's model definition (the code is not
copied: these are compact re-statements of the same computation, module by module, in the publisher's
registration order so that ``state_dict()`` lists the publisher's keys and shapes in the publisher's
order, checked against ``tests/reference/checkpoint-keys``):

* ``legacy_senet``: the SE authors' Caffe models as converted by Cadene (``pretrainedmodels/models/
  senet.py``) and kept by timm (``timm/models/senet.py``, ``legacy_se*``): ``SEResNetBottleneck``
  (stride in the first 1x1), ``SEResNeXtBottleneck`` (stride in the 3x3, width floor(planes * d / 64) * C),
  ``SEBottleneck`` (SENet-154: first 1x1 at 2 * planes, 3x3 at 4 * planes with 64 groups),
  timm's ``SEResNetBlock`` (SE-ResNet-18/34, with a ReLU between the second BN and SE); stem ``layer0``
  ending in ``MaxPool2d(3, 2, ceil_mode=True)`` without padding; SE = ``channels // 16`` hidden units.
* ``modern_resnet``: torchvision's ``torchvision/models/resnet.py`` and timm's ``timm/models/resnet.py``
  (stride in the 3x3, stem max pool with padding 1), timm's SE being ``timm/layers/squeeze_excite.py``
  ``SEModule`` (hidden = ``make_divisible(C / 16, 8, round_limit=0)``, after ``bn3``).
* ``tv_vgg16_bn``, ``tv_densenet121``, ``tv_mobilenet_v3_large``, ``tv_efficientnet_b0``: torchvision's
  ``vgg.py``, ``densenet.py``, ``mobilenetv3.py``, ``efficientnet.py`` and ``ops/misc.py``
  (``Conv2dNormActivation``, ``SqueezeExcitation``).
* ``inception_resnet_v2``: the TF-slim port (timm's ``inception_resnet_v2.py``, Cadene's
  ``inceptionresnetv2.py``): BN eps 1e-3, the last C block (``block8``) with scale 1.0 and no ReLU.

Heads: Cadene's SENet ends in ``AvgPool2d(7)`` and his Inception-ResNet-v2 in ``AvgPool2d(8,
count_include_pad=False)``; timm (and torchvision everywhere) pool globally. ``head='cadene'`` builds
Cadene's fixed pool, which equals the global average exactly when the last feature map is 7x7 (224 px)
or 8x8 (299 px); the default is the global average, so small inputs can be used.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# ---------------------------------------------------------------------------------------------------
# Shared pieces


class _SE(nn.Module):
    """SE with 1x1-conv ``fc1``/``fc2`` (bias), ``act`` between them and ``gate`` on the output."""

    def __init__(self, channels: int, hidden: int, act: nn.Module, gate: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = act
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = gate

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


def _round_to(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    # The MobileNet width rounding (torchvision's _make_divisible, timm's make_divisible).
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < round_limit * v else out


def _bn(channels: int, eps: float = 1e-5) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps)


# ---------------------------------------------------------------------------------------------------
# Legacy SENets (Cadene's pretrainedmodels; timm's legacy_se*)


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
        self.bn1 = _bn(first)
        self.conv2 = nn.Conv2d(first, mid, 3, s2, 1, groups=groups, bias=False)
        self.bn2 = _bn(mid)
        self.conv3 = nn.Conv2d(mid, out, 1, bias=False)
        self.bn3 = _bn(out)
        self.relu = nn.ReLU()
        self.se_module = _SE(out, out // 16, nn.ReLU(), nn.Sigmoid())
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
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, groups=groups, bias=False)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU()
        self.se_module = _SE(planes, planes // 16, nn.ReLU(), nn.Sigmoid())
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
                ("conv1", nn.Conv2d(3, 64, 3, 2, 1, bias=False)), ("bn1", _bn(64)), ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(64, 64, 3, 1, 1, bias=False)), ("bn2", _bn(64)), ("relu2", nn.ReLU()),
                ("conv3", nn.Conv2d(64, 128, 3, 1, 1, bias=False)), ("bn3", _bn(128)), ("relu3", nn.ReLU()),
            ]
            inplanes = 128
        else:
            stem = [("conv1", nn.Conv2d(3, 64, 7, 2, 3, bias=False)), ("bn1", _bn(64)), ("relu1", nn.ReLU())]
            inplanes = 64
        self.layer0 = nn.Sequential(OrderedDict([*stem, ("pool", nn.MaxPool2d(3, 2, ceil_mode=True))]))
        for i, n in enumerate(layers):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes * expansion:
                k = 3 if kind == "senet" and i > 0 else 1  # SENet-154: 3x3 projections in layer2..4
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes * expansion, k, stride, k // 2, bias=False), _bn(planes * expansion)
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


# ---------------------------------------------------------------------------------------------------
# torchvision's and timm's ResNets


class _ModernBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, down: nn.Module | None, se: bool, **_: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.se = _SE(planes, _round_to(planes / 16, 8, 0.0), nn.ReLU(), nn.Sigmoid()) if se else None
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
        self.bn1 = _bn(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)  # "v1.5"
        self.bn2 = _bn(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = _bn(out)
        # timm's SEModule: hidden = make_divisible(C / 16, 8) with round_limit 0.
        self.se = _SE(out, _round_to(out / 16, 8, 0.0), nn.ReLU(), nn.Sigmoid()) if se else None
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
        self.bn1 = _bn(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, n in enumerate(layers):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes * expansion:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes * expansion, 1, stride, bias=False), _bn(planes * expansion)
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


# ---------------------------------------------------------------------------------------------------
# torchvision: VGG-16-BN, DenseNet-121, MobileNetV3-Large, EfficientNet-B0


class TvVGG16BN(nn.Module):
    """torchvision's ``vgg16_bn``: config D, conv (with bias)-BN-ReLU, 2x2 max pools, 7x7 adaptive pool."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1), _bn(int(v)), nn.ReLU()]
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 1000),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class _TvDenseLayer(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.norm1 = _bn(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, 128, 1, bias=False)
        self.norm2 = _bn(128)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(128, 32, 3, 1, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _TvDenseBlock(nn.ModuleDict):
    def forward(self, x: Tensor) -> Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], 1)
        return x


class TvDenseNet121(nn.Module):
    """torchvision's ``densenet121``: k=32, blocks (6, 12, 24, 16), ReLU after ``norm5``, global average."""

    def __init__(self) -> None:
        super().__init__()
        parts: list[tuple[str, nn.Module]] = [
            ("conv0", nn.Conv2d(3, 64, 7, 2, 3, bias=False)), ("norm0", _bn(64)), ("relu0", nn.ReLU()),
            ("pool0", nn.MaxPool2d(3, 2, 1)),
        ]
        c = 64
        for i, n in enumerate((6, 12, 24, 16)):
            parts.append((f"denseblock{i + 1}", _TvDenseBlock({f"denselayer{j + 1}": _TvDenseLayer(c + 32 * j)
                                                                for j in range(n)})))
            c += 32 * n
            if i < 3:
                transition = nn.Sequential(OrderedDict(
                    norm=_bn(c), relu=nn.ReLU(), conv=nn.Conv2d(c, c // 2, 1, bias=False), pool=nn.AvgPool2d(2, 2)
                ))
                parts.append((f"transition{i + 1}", transition))
                c //= 2
        parts.append(("norm5", _bn(c)))
        self.features = nn.Sequential(OrderedDict(parts))
        self.classifier = nn.Linear(c, 1000)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(F.relu(self.features(x)).mean((2, 3)))


def _tv_conv(cin: int, cout: int, k: int, stride: int, groups: int, act: type[nn.Module] | None, eps: float):
    # torchvision's Conv2dNormActivation: conv (no bias, padding (k - 1) // 2), BN, activation.
    mods: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), _bn(cout, eps)]
    return nn.Sequential(*mods, act()) if act is not None else nn.Sequential(*mods)


class _TvInvertedResidual(nn.Module):
    def __init__(
        self, cin: int, k: int, exp: int, cout: int, se_hidden: int | None, act: type[nn.Module], stride: int,
        eps: float, se_act: type[nn.Module], se_gate: type[nn.Module],
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(_tv_conv(cin, exp, 1, 1, 1, act, eps))
        layers.append(_tv_conv(exp, exp, k, stride, exp, act, eps))
        if se_hidden is not None:
            layers.append(_SE(exp, se_hidden, se_act(), se_gate()))
        layers.append(_tv_conv(exp, cout, 1, 1, 1, None, eps))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)  # (stochastic depth in EfficientNet: identity in eval)
        return y + x if self.residual else y


class TvMobileNetV3Large(nn.Module):
    """torchvision's ``mobilenet_v3_large``: BN eps 1e-3, SE hidden = _make_divisible(C_exp // 4, 8), ReLU,
    hard sigmoid; head Linear(960, 1280), hard-swish, dropout, Linear."""

    # (input, kernel, expanded, output, SE, activation, stride): the architecture table of mobilenetv3.py.
    _TABLE = (
        (16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2), (24, 3, 72, 24, False, "RE", 1),
        (24, 5, 72, 40, True, "RE", 2), (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
        (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
        (80, 3, 184, 80, False, "HS", 1), (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
        (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1), (160, 5, 960, 160, True, "HS", 1),
    )

    def __init__(self) -> None:
        super().__init__()
        eps = 1e-3
        layers: list[nn.Module] = [_tv_conv(3, 16, 3, 2, 1, nn.Hardswish, eps)]
        for cin, k, exp, cout, se, a, s in self._TABLE:
            act = nn.Hardswish if a == "HS" else nn.ReLU
            hidden = _round_to(exp // 4, 8) if se else None
            layers.append(_TvInvertedResidual(cin, k, exp, cout, hidden, act, s, eps, nn.ReLU, nn.Hardsigmoid))
        layers.append(_tv_conv(160, 960, 1, 1, 1, nn.Hardswish, eps))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(960, 1280), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


class TvEfficientNetB0(nn.Module):
    """torchvision's ``efficientnet_b0``: BN eps 1e-5 (``nn.BatchNorm2d``'s default; only B5-B7 and V2 pass
    1e-3), SiLU, SE hidden = max(1, C_in // 4) with SiLU and sigmoid; head dropout, Linear."""

    # (expansion, kernel, stride, input, output, blocks): B0's table in efficientnet.py.
    _TABLE = (
        (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1),
    )

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        layers: list[nn.Module] = [_tv_conv(3, 32, 3, 2, 1, nn.SiLU, eps)]
        for e, k, s, cin, cout, n in self._TABLE:
            stage = []
            for b in range(n):
                c = cin if b == 0 else cout
                stage.append(_TvInvertedResidual(
                    c, k, c * e, cout, max(1, c // 4), nn.SiLU, s if b == 0 else 1, eps, nn.SiLU, nn.Sigmoid
                ))
            layers.append(nn.Sequential(*stage))
        layers.append(_tv_conv(320, 1280, 1, 1, 1, nn.SiLU, eps))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


# ---------------------------------------------------------------------------------------------------
# Inception-ResNet-v2, the TF-slim port


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


# ---------------------------------------------------------------------------------------------------
# Catalogue: listing name -> (builder of the reference net, our registered model)

PUBLISHER_NETS = {
    "legacy_seresnet18": (lambda: LegacySENet("basic", (2, 2, 2, 2)), "se_resnet18"),
    "legacy_seresnet50": (lambda: LegacySENet("resnet", (3, 4, 6, 3)), "se_resnet50"),
    "legacy_seresnext50_32x4d": (lambda: LegacySENet("resnext", (3, 4, 6, 3)), "se_resnext50_32x4d"),
    "legacy_senet154": (lambda: LegacySENet("senet", (3, 8, 36, 3)), "senet154"),
    "resnet50": (lambda: ModernResNet("bottleneck", (3, 4, 6, 3)), "resnet50"),
    "seresnet50": (lambda: ModernResNet("bottleneck", (3, 4, 6, 3), se=True), "se_resnet50"),
    "seresnext50_32x4d": (
        lambda: ModernResNet("bottleneck", (3, 4, 6, 3), groups=32, base_width=4, se=True), "se_resnext50_32x4d"
    ),
    "tv_resnet18": (lambda: ModernResNet("basic", (2, 2, 2, 2)), "resnet18"),
    "tv_resnet101": (lambda: ModernResNet("bottleneck", (3, 4, 23, 3)), "resnet101"),
    "tv_resnext50_32x4d": (
        lambda: ModernResNet("bottleneck", (3, 4, 6, 3), groups=32, base_width=4), "resnext50_32x4d"
    ),
    "tv_vgg16_bn": (TvVGG16BN, "vgg16_bn"),
    "tv_densenet121": (TvDenseNet121, "densenet121"),
    "tv_mobilenet_v3_large": (TvMobileNetV3Large, "mobilenet_v3_large"),
    "tv_efficientnet_b0": (TvEfficientNetB0, "efficientnet_b0"),
    "inception_resnet_v2": (InceptionResNetV2, "inception_resnet_v2"),
}


def randomize_(model: nn.Module, calibration: Tensor, seed: int = 0) -> nn.Module:
    """Fills every parameter and BatchNorm statistic of ``model`` with random values (in place), so that each
    matters, and returns the model in eval mode.

    Convolutions and linear layers get He-scaled weights (uniform, a third of the cost of normal draws for
    the 100M+ weights of VGG and SENet-154) and random biases; every BatchNorm gets random gamma and beta,
    and running statistics near those its input actually has on ``calibration`` (one forward pass in
    training mode), randomly shifted and scaled. So BN is far from the identity (its eps and statistics
    show in the output) yet, as in a trained network, keeps activations near unit scale: a random deep
    residual network whose BN does not normalise amplifies rounding errors geometrically with depth
    (SENet-154's 50 blocks turn 1e-16 into 1e-5), which would hide the function's equality behind
    ill-conditioning.

    Args:
        model: The network (float64 for the equivalence tests).
        calibration: An input batch of the size the test uses (a few samples).
        seed: Seeds the values.
    """
    g = torch.Generator().manual_seed(seed)

    def uniform_(t: Tensor, lo: float, hi: float) -> Tensor:
        return t.uniform_(lo, hi, generator=g)

    def around_zero(t: Tensor, std: float) -> Tensor:  # uniform with standard deviation ``std``
        return uniform_(t, -std * 3**0.5, std * 3**0.5)

    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                around_zero(m.weight, math.sqrt(2.0 / m.weight[0].numel()))
                if m.bias is not None:
                    around_zero(m.bias, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                uniform_(m.weight, 0.5, 1.5)
                around_zero(m.bias, 0.2)
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: after one batch, that batch's statistics
        model.train()
        model(calibration)
        model.eval()
        for m in norms:
            var = m.running_var.clone()
            m.running_mean.add_(around_zero(torch.empty_like(var), 0.2) * var.sqrt())
            m.running_var.copy_(var * uniform_(torch.empty_like(var), 0.5, 2.0) + 0.1 * var.mean() + 1e-3)
            m.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (), generator=g)))
            m.momentum = 0.1
    return model


KEYS_DIR = Path(__file__).resolve().parent / "reference" / "checkpoint-keys"


def listing_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The ``(key, shape)`` rows of ``tests/reference/checkpoint-keys/<name>.txt``, in order."""
    rows = []
    for line in (KEYS_DIR / f"{name}.txt").read_text().splitlines()[1:]:
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in re.findall(r"\d+", shape))))
    return rows

"""torchvision's VGG-16-BN, DenseNet-121, MobileNetV3-Large and EfficientNet-B0."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .parts import SE, bn2d, round_to


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
                layers += [nn.Conv2d(c, int(v), 3, padding=1), bn2d(int(v)), nn.ReLU()]
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
        self.norm1 = bn2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, 128, 1, bias=False)
        self.norm2 = bn2d(128)
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
            ("conv0", nn.Conv2d(3, 64, 7, 2, 3, bias=False)), ("norm0", bn2d(64)), ("relu0", nn.ReLU()),
            ("pool0", nn.MaxPool2d(3, 2, 1)),
        ]
        c = 64
        for i, n in enumerate((6, 12, 24, 16)):
            parts.append((f"denseblock{i + 1}", _TvDenseBlock({f"denselayer{j + 1}": _TvDenseLayer(c + 32 * j)
                                                                for j in range(n)})))
            c += 32 * n
            if i < 3:
                transition = nn.Sequential(OrderedDict(
                    norm=bn2d(c), relu=nn.ReLU(), conv=nn.Conv2d(c, c // 2, 1, bias=False), pool=nn.AvgPool2d(2, 2)
                ))
                parts.append((f"transition{i + 1}", transition))
                c //= 2
        parts.append(("norm5", bn2d(c)))
        self.features = nn.Sequential(OrderedDict(parts))
        self.classifier = nn.Linear(c, 1000)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(F.relu(self.features(x)).mean((2, 3)))


def _tv_conv(cin: int, cout: int, k: int, stride: int, groups: int, act: type[nn.Module] | None, eps: float):
    # torchvision's Conv2dNormActivation: conv (no bias, padding (k - 1) // 2), BN, activation.
    mods: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), bn2d(cout, eps)]
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
            layers.append(SE(exp, se_hidden, se_act(), se_gate()))
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
            hidden = round_to(exp // 4, 8) if se else None
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

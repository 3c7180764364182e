"""Networks in the shapes that ``senet.retrofit`` once refused, written here from their public designs.

Each class follows the structure of a published implementation (named in its docstring) at small widths,
so that the tests run in seconds; none imports timm or torchvision. The shapes:

* timm's norm layers: ``BatchNormAct2d``, a ``BatchNorm2d`` subclass that applies dropout and the
  activation inside its ``forward``, often followed by an ``nn.Identity`` (``aa``, ``se``);
* timm's residual adds: ``if self.has_skip: x = self.drop_path(x) + shortcut`` (EfficientNet,
  MobileNetV2), ``x = self.drop_path(x) + self.downsample(shortcut)`` (RegNet, CSPResNet);
* torchvision's ConvNeXt: a ``LayerNorm`` over channels with ``Permute`` modules around it, ``Linear``
  layers in channels-last, a learned per-channel layer scale before the add (``result += input``);
* timm's CSPResNet: cross-stage partial stages (split, transform one part, concatenate);
* stages built as ``nn.Sequential`` of custom blocks, or as modules iterating ``self.children()``.

``EXPECTED_BLOCKS`` says, for each network, which modules are its residual blocks: what a retrofit must
find, one attention module each.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


# --- timm's building blocks -----------------------------------------------------------------------------
class BatchNormAct2d(nn.BatchNorm2d):
    """timm.layers.BatchNormAct2d: batch norm, then dropout and the activation, in one module."""

    def __init__(self, num_features: int, apply_act: bool = True, act_layer: type = nn.ReLU) -> None:
        super().__init__(num_features)
        self.drop = nn.Identity()
        self.act = act_layer(inplace=True) if apply_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = True if self.training else (self.running_mean is None) and (self.running_var is None)
        x = F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, bn_training, factor, self.eps,
        )  # fmt: skip
        return self.act(self.drop(x))


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """timm.layers.drop_path: drops whole samples of a residual branch (stochastic depth)."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class DropPath(nn.Module):
    """timm.layers.DropPath."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)


class ConvNormAct(nn.Module):
    """timm.layers.ConvNormAct: a convolution, a ``BatchNormAct2d``, an anti-aliasing ``Identity``."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
                 apply_act: bool = True, act_layer: type = nn.ReLU) -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = BatchNormAct2d(cout, apply_act=apply_act, act_layer=act_layer)
        self.aa = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aa(self.bn(self.conv(x)))


# --- timm EfficientNet-B0 / MobileNetV2 (timm/models/_efficientnet_blocks.py), built without SE ----------
class DepthwiseSeparableConv(nn.Module):
    """timm's DepthwiseSeparableConv: dw 3x3, (SE: Identity), pw 1x1; skip when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, act: type, drop: float) -> None:
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = BatchNormAct2d(cin, act_layer=act)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = BatchNormAct2d(cout, apply_act=False)
        self.drop_path = DropPath(drop) if drop else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.aa(self.bn1(self.conv_dw(x)))
        x = self.bn2(self.conv_pw(self.se(x)))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


class InvertedResidual(nn.Module):
    """timm's InvertedResidual (MBConv): pw expansion, dw 3x3, (SE: Identity), linear pw projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, act: type, drop: float) -> None:
        super().__init__()
        mid = cin * expand
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = BatchNormAct2d(mid, act_layer=act)
        self.conv_dw = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = BatchNormAct2d(mid, act_layer=act)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = BatchNormAct2d(cout, apply_act=False)
        self.drop_path = DropPath(drop) if drop else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.bn1(self.conv_pw(x))
        x = self.se(self.aa(self.bn2(self.conv_dw(x))))
        x = self.bn3(self.conv_pwl(x))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


class EfficientNet(nn.Module):
    """timm's EfficientNet class (B0 with SiLU, or MobileNetV2 with ReLU6), three tiny stages, no SE.

    ``blocks`` is an ``nn.Sequential`` of ``nn.Sequential`` stages of custom blocks, as in timm.
    """

    def __init__(self, act: type = nn.SiLU, drop_path_rate: float = 0.1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(8, act_layer=act)
        self.blocks = nn.Sequential(
            nn.Sequential(DepthwiseSeparableConv(8, 8, 1, act, drop_path_rate)),
            nn.Sequential(InvertedResidual(8, 12, 2, 3, act, drop_path_rate),
                          InvertedResidual(12, 12, 1, 3, act, drop_path_rate)),
            nn.Sequential(InvertedResidual(12, 16, 2, 3, act, drop_path_rate),
                          InvertedResidual(16, 16, 1, 3, act, drop_path_rate),
                          InvertedResidual(16, 16, 1, 3, act, drop_path_rate)),
        )  # fmt: skip
        self.conv_head = nn.Conv2d(16, 32, 1, bias=False)
        self.bn2 = BatchNormAct2d(32, act_layer=act)
        self.classifier = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))
        return self.classifier(x.mean((2, 3)))


# --- timm RegNet (timm/models/regnet.py) ---------------------------------------------------------------
class RegBottleneck(nn.Module):
    """timm's RegNet Bottleneck: 1x1, grouped 3x3, (SE: Identity), 1x1 without activation; projection."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int = 8, drop: float = 0.0) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, 1)
        self.conv2 = ConvNormAct(cout, cout, 3, stride, groups=cout // group_width)
        self.se = nn.Identity()
        self.conv3 = ConvNormAct(cout, cout, 1, apply_act=False)
        self.act3 = nn.ReLU()
        self.downsample = ConvNormAct(cin, cout, 1, stride, apply_act=False) if stride != 1 or cin != cout else None
        self.drop_path = DropPath(drop) if drop else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv3(self.se(self.conv2(self.conv1(x))))
        # timm: "downsample" now represents the shortcut, and is an Identity where shapes agree.
        x = self.drop_path(x) + (self.downsample(shortcut) if self.downsample is not None else shortcut)
        return self.act3(x)


class RegStage(nn.Module):
    """timm's RegStage: blocks as children ``b1``, ``b2``, ..., run by iterating ``self.children()``."""

    def __init__(self, depth: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", RegBottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x = block(x)
        return x


class RegNet(nn.Module):
    """timm's RegNet (X family, no SE): a ConvNormAct stem, two stages, a pooled linear head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, 8, 3, 2)
        self.s1 = RegStage(1, 8, 16, 2)
        self.s2 = RegStage(2, 16, 32, 2)
        self.final_conv = nn.Identity()
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_conv(self.s2(self.s1(self.stem(x))))
        return self.head(x.mean((2, 3)))


# --- timm CSPResNet-50 (timm/models/cspnet.py) ----------------------------------------------------------
class CspBottleneck(nn.Module):
    """timm's cspnet BottleneckBlock: 1x1, 3x3, (attn: Identity), 1x1 without activation, then add, act."""

    def __init__(self, chs: int, mid: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(chs, mid, 1, act_layer=nn.LeakyReLU)
        self.conv2 = ConvNormAct(mid, mid, 3, act_layer=nn.LeakyReLU)
        self.attn2 = nn.Identity()
        self.conv3 = ConvNormAct(mid, chs, 1, apply_act=False)
        self.attn3 = nn.Identity()
        self.drop_path = nn.Identity()
        self.act3 = nn.LeakyReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.attn2(self.conv2(self.conv1(x)))
        x = self.attn3(self.conv3(x))
        x = self.drop_path(x) + shortcut
        return self.act3(x)


class CrossStage(nn.Module):
    """timm's CrossStage: downsample, expand, split in two, blocks on one half, transition, concatenate."""

    def __init__(self, cin: int, cout: int, stride: int, depth: int) -> None:
        super().__init__()
        self.expand_chs = cout * 2
        self.conv_down = ConvNormAct(cin, cout, 3, stride, act_layer=nn.LeakyReLU) if stride != 1 else nn.Identity()
        prev = cout if stride != 1 else cin
        self.conv_exp = ConvNormAct(prev, self.expand_chs, 1, apply_act=False)
        half = self.expand_chs // 2
        self.blocks = nn.Sequential(*[CspBottleneck(half, half // 2) for _ in range(depth)])
        self.conv_transition_b = ConvNormAct(half, half, 1, act_layer=nn.LeakyReLU)
        self.conv_transition = ConvNormAct(self.expand_chs, cout, 1, act_layer=nn.LeakyReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_exp(self.conv_down(x))
        xs, xb = x.split(self.expand_chs // 2, dim=1)
        xb = self.conv_transition_b(self.blocks(xb)).contiguous()
        return self.conv_transition(torch.cat([xs, xb], dim=1))


class CspResNet(nn.Module):
    """timm's CSPResNet: a 7x7 stem with max pooling, two cross-stage partial stages of two blocks each."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvNormAct(3, 8, 7, 2, act_layer=nn.LeakyReLU), nn.MaxPool2d(3, 2, 1))
        self.stages = nn.Sequential(CrossStage(8, 16, 1, 2), CrossStage(16, 32, 2, 2))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


# --- torchvision ConvNeXt-T (torchvision/models/convnext.py) --------------------------------------------
class Permute(nn.Module):
    """torchvision.ops.misc.Permute."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


class LayerNorm2d(nn.LayerNorm):
    """torchvision's LayerNorm2d: a LayerNorm over channels of an (N, C, H, W) tensor, permutes inside."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth in 'row' mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * noise.div_(keep)


class CNBlock(nn.Module):
    """torchvision's CNBlock: dw 7x7, Permute, LayerNorm, Linear, GELU, Linear, Permute; layer scale."""

    def __init__(self, dim: int, layer_scale: float, p: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)
        self.stochastic_depth = StochasticDepth(p)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torchvision's name
        result = self.layer_scale * self.block(input)
        result = self.stochastic_depth(result)
        result += input
        return result


class ConvNeXt(nn.Module):
    """torchvision's ConvNeXt: a patchify stem with LayerNorm2d, stages of CNBlocks, LayerNorm2d downsampling."""

    def __init__(self, dims: tuple[int, int] = (8, 16), depths: tuple[int, int] = (2, 2), num_classes: int = 10,
                 layer_scale: float = 0.5, p: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))]
        for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            layers.append(nn.Sequential(*[CNBlock(dim, layer_scale, p) for _ in range(depth)]))
            if i + 1 < len(dims):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6), nn.Conv2d(dim, dims[i + 1], 2, 2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1), nn.Linear(dims[-1], num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


# --- timm ConvNeXt (timm/models/convnext.py, conv_mlp=False) -------------------------------------------
class Mlp(nn.Module):
    """timm.layers.Mlp over a channels-last tensor."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(0.0)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class ConvNeXtBlock(nn.Module):
    """timm's ConvNeXtBlock: dw 7x7, permute, LayerNorm, Mlp, permute back, ``x.mul(gamma)``, drop path."""

    def __init__(self, dim: int, ls_init_value: float = 0.5, drop: float = 0.1) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim))
        self.shortcut = nn.Identity()
        self.drop_path = DropPath(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x)
        x = x.permute(0, 2, 3, 1)
        x = self.mlp(self.norm(x))
        x = x.permute(0, 3, 1, 2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        return self.drop_path(x) + self.shortcut(shortcut)


class ConvNeXtStage(nn.Module):
    """timm's ConvNeXtStage: an optional (LayerNorm2d, 2x2 conv) downsampling, then a Sequential of blocks."""

    def __init__(self, cin: int, cout: int, depth: int) -> None:
        super().__init__()
        down = nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, cout, 2, 2))
        self.downsample = down if cin != cout else nn.Identity()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(cout) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class TimmConvNeXt(nn.Module):
    """timm's ConvNeXt: a patchify stem with LayerNorm2d, two stages, a LayerNorm2d head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 4, 4), LayerNorm2d(8, eps=1e-6))
        self.stages = nn.Sequential(ConvNeXtStage(8, 8, 2), ConvNeXtStage(8, 16, 1))
        self.norm_pre = nn.Identity()
        self.head_norm = LayerNorm2d(16, eps=1e-6)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_pre(self.stages(self.stem(x)))
        return self.fc(self.head_norm(x.mean((2, 3), keepdim=True)).flatten(1))


# --- No sensible place: convolutions without norms, no residual additions --------------------------------
class PlainConvNet(nn.Module):
    """An AlexNet-like network: convolutions and ReLUs, no normalisation, no residual block."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def _blocks(model: nn.Module, kind: type, where: str = "has_skip") -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, kind) and getattr(m, where, True)]


# name -> (builder, the residual blocks' paths, the shape it stands for)
NETWORKS = {
    "efficientnet_b0": (lambda: EfficientNet(nn.SiLU), lambda m: _blocks(m, (DepthwiseSeparableConv, InvertedResidual)),
                        "timm EfficientNet-B0 without SE: BatchNormAct2d, `if self.has_skip:` drop-path add"),
    "mobilenetv2": (lambda: EfficientNet(nn.ReLU6, drop_path_rate=0.0),
                    lambda m: _blocks(m, (DepthwiseSeparableConv, InvertedResidual)),
                    "timm MobileNetV2: as EfficientNet, ReLU6, no drop path"),
    "regnet": (RegNet, lambda m: _blocks(m, RegBottleneck), "timm RegNetX: ConvNormAct, stages iterating children"),
    "cspresnet": (CspResNet, lambda m: _blocks(m, CspBottleneck),
                  "timm CSPResNet-50: cross-stage partial (split, blocks on one half, concatenate)"),
    "convnext": (ConvNeXt, lambda m: _blocks(m, CNBlock),
                 "torchvision ConvNeXt-T: LayerNorm between Permutes, Linear layers, layer scale"),
    "convnext_timm": (TimmConvNeXt, lambda m: _blocks(m, ConvNeXtBlock),
                      "timm ConvNeXt: channels-last Mlp, permute back in forward, `x.mul(gamma)`"),
}  # fmt: skip


# --- A channels-last stage: its residual branch ends in a Linear over (N, H, W, C) -----------------------
class ChannelsLastBlock(nn.Module):
    """A MetaFormer-style block on an (N, H, W, C) tensor: dw conv between permutes, LayerNorm, MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.fc2(self.act(self.fc1(self.norm(y))))


class ChannelsLastNet(nn.Module):
    """A conv stem, then channels-last blocks: SE (which pools dimensions 2 and 3) has no place here."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, 4)
        self.blocks = nn.Sequential(ChannelsLastBlock(8), ChannelsLastBlock(8))
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x).permute(0, 2, 3, 1)).mean((1, 2)))

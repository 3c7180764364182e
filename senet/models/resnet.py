"""ResNet, ResNeXt and SENet-154 for ImageNet, with or without Squeeze-and-Excitation.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385);
Xie, Girshick, Dollar, Tu, He, "Aggregated Residual Transformations for Deep Neural Networks" (ResNeXt),
CVPR 2017 (arXiv:1611.05431); Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks", CVPR 2018
(arXiv:1709.01507), which adds SE to every residual block and builds SENet-154.

Every network is a frozen ``ResNetConfig`` turned into modules by ``ResNet``. The ``state_dict`` uses
the public modern naming (``conv1``/``bn1``, ``layerN.i.conv1..3``/``bn1..3``, ``downsample.0/.1``,
``se.fc1``/``se.fc2``, ``fc``), so the public ImageNet checkpoints load as they are.

Stride placement. The paper's ResNets are the original Caffe models ("ResNet v1"), which put the stride
of a downsampling bottleneck on its first 1x1 convolution; counting multiply-adds that way gives the
paper's Table 2 (ResNet-50: 3.86 G). torchvision and timm put it on the 3x3 convolution ("v1.5", 4.09 G)
and ResNeXt (Torch code) and the released SE-ResNeXt and SENet-154 do too. So ``resnet*``/``se_resnet*``
default to ``stride_in_1x1=True`` and ``resnext*``/``se_resnext*``/``senet154`` to ``False``; the
option changes no parameter and no ``state_dict`` key.

SE placement (``AttentionConfig.placement``; the paper's Fig. 5 and Table 14), the module always at
attribute ``se`` of the block:

* ``'standard'``: y = relu(x' + SE(F(x)))   (x' = x or its projection)
* ``'pre'``:      y = relu(x' + F(SE(x)))   (SE on the block input, C = input channels)
* ``'post'``:     y = relu(SE(x' + F(x)))   (SE after the addition, before the final ReLU)
* ``'identity'``: y = relu(SE(x') + F(x))   (SE on the shortcut, in parallel to the residual branch)
* ``'after_3x3'``: SE on the output (after BN and ReLU) of the 3x3 convolution of a bottleneck
  (C = bottleneck width); in a basic block, on the output of its first 3x3 convolution.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from .._validation import did_you_mean
from ..layers.fused import bn_scale_residual_relu, can_fuse, fast_se, scale_residual
from .base import SENetModel
from .registry import PLACEMENTS, AttentionConfig, register_model

BLOCKS = ("basic", "bottleneck")
STEMS = ("7x7", "3x3_deep")
DOWNSAMPLES = ("1x1", "3x3")
STEM_POOLS = ("pad", "ceil")

AttentionFactory = Callable[[int], "nn.Module | None"]


def check_choice(name: str, value: object, valid: tuple[str, ...]) -> None:
    """Raises a ``ValueError`` naming the valid values (closest first) when ``value`` is not one of them.

    Args:
        name: The option's name, for the message.
        value: The value given.
        valid: The accepted values.

    Raises:
        ValueError: If ``value`` is not in ``valid``.
    """
    if value not in valid:
        hint = did_you_mean(str(value), valid, n=3, cutoff=0.3)
        raise ValueError(f"unknown {name} {value!r}{hint} (valid: {', '.join(valid)})")


def merge_residual(shortcut: Tensor, branch: Tensor, se: nn.Module | None, placement: str) -> Tensor:
    """Adds the shortcut and the residual branch, applying SE where ``placement`` puts it at the sum.

    With SE's fast path the scale and the addition are one ``addcmul`` (``senet.layers.fused``).

    Args:
        shortcut: x', the identity or the projected input.
        branch: F(x), the residual branch's output.
        se: The block's attention module, or ``None``.
        placement: 'standard' (x' + SE(F)), 'identity' (SE(x') + F), 'post' (SE(x' + F)); for 'pre' and
            'after_3x3' SE sits inside the branch and the sum is plain.

    Returns:
        The merged tensor, before any final activation.
    """
    if se is None:
        return shortcut + branch
    fast = fast_se(se)
    if placement == "standard":
        return scale_residual(branch, se.excite(branch), shortcut, relu=False) if fast else shortcut + se(branch)
    if placement == "identity":
        return scale_residual(shortcut, se.excite(shortcut), branch, relu=False) if fast else se(shortcut) + branch
    if placement == "post":
        return se(shortcut + branch)
    return shortcut + branch


def finish_block(
    conv_out: Tensor, bn: nn.Module, shortcut: Tensor, se: nn.Module | None, placement: str, act: nn.Module
) -> Tensor:
    """act(merge(shortcut, bn(conv_out))): the end of a post-activation residual block.

    With SE at the standard place this is ``bn_scale_residual_relu``: the BatchNorm, the scale, the
    addition and the ReLU without the extra saved tensor of plain autograd.
    """
    if se is not None and placement == "standard" and can_fuse(bn, se, act):
        return bn_scale_residual_relu(conv_out, bn, se, shortcut)
    return act(merge_residual(shortcut, bn(conv_out), se, placement))


def se_channels(placement: str, *, inplanes: int, mid: int, outplanes: int) -> int:
    """Returns the number of channels the SE module of a residual block sees under ``placement``.

    Args:
        placement: One of ``PLACEMENTS``.
        inplanes: The block's input channels ('pre').
        mid: The channels after the block's (first) 3x3 convolution ('after_3x3').
        outplanes: The block's output channels ('standard', 'post', 'identity').
    """
    return {"pre": inplanes, "after_3x3": mid}.get(placement, outplanes)


def no_attention(channels: int) -> None:
    """The default attention factory of a block: no attention module for any channel count."""
    return None


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (ResNet-18/34 and the CIFAR ResNets).

    Args:
        inplanes: Input channels.
        planes: Output channels of both convolutions.
        stride: Stride of the first convolution (and of ``downsample``).
        downsample: The shortcut's projection (or any module mapping x to the output's shape), or ``None``
            for the identity.
        attention: ``attention(channels) -> module or None``, the block's SE (labelled by the caller).
        placement: Where SE goes, one of ``PLACEMENTS``.
        relu_before_se: Apply a ReLU to the residual branch's output (after ``bn2``), before SE and the
            addition: y = relu(x' + SE(relu(bn2(conv2(...))))), as timm's legacy SE-ResNet-18/34 do.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        attention: AttentionFactory = no_attention,
        placement: str = "standard",
        relu_before_se: bool = False,
    ) -> None:
        super().__init__()
        check_choice("se_placement", placement, PLACEMENTS)
        self.placement = placement
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = attention(se_channels(placement, inplanes=inplanes, mid=planes, outplanes=planes))
        # No parameters: the key layout is the same either way.
        self.act_branch = nn.ReLU(inplace=True) if relu_before_se else None
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zeroes the last BN's gamma so that the block starts as the identity (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.se(x) if self.se is not None and self.placement == "pre" else x
        out = self.act1(self.bn1(self.conv1(out)))
        if self.se is not None and self.placement == "after_3x3":
            out = self.se(out)
        if self.act_branch is not None:
            branch = self.act_branch(self.bn2(self.conv2(out)))
            return self.act2(merge_residual(shortcut, branch, self.se, self.placement))
        return finish_block(self.conv2(out), self.bn2, shortcut, self.se, self.placement, self.act2)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand, with a shortcut (ResNet-50 and deeper).

    Args:
        inplanes: Input channels.
        planes: The stage's base width; the output has ``planes * 4`` channels.
        stride: The block's stride, on ``conv1`` if ``stride_in_1x1`` (v1) else on ``conv2`` (v1.5).
        downsample: The shortcut's projection, or ``None`` for the identity.
        groups: Groups of the 3x3 convolution (ResNeXt cardinality C).
        base_width: Width per group at the first stage (ResNeXt's d); 64 with ``groups=1`` is ResNet.
        reduce_first: ``conv1`` has ``width // reduce_first`` channels (2 in SENet-154, else 1).
        stride_in_1x1: Put the stride on the first 1x1 convolution (Caffe ResNet) instead of the 3x3.
        attention: ``attention(channels) -> module or None``, the block's SE (labelled by the caller).
        placement: Where SE goes, one of ``PLACEMENTS``.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        reduce_first: int = 1,
        stride_in_1x1: bool = True,
        attention: AttentionFactory = no_attention,
        placement: str = "standard",
    ) -> None:
        super().__init__()
        check_choice("se_placement", placement, PLACEMENTS)
        self.placement = placement
        width = int(planes * base_width / 64) * groups
        first = width // reduce_first
        outplanes = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, first, 1, stride_1x1, bias=False)
        self.bn1 = nn.BatchNorm2d(first)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(first, width, 3, stride_3x3, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        # Registered after bn3 and before downsample: the key order of the public checkpoints.
        self.se = attention(se_channels(placement, inplanes=inplanes, mid=width, outplanes=outplanes))
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zeroes the last BN's gamma so that the block starts as the identity (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.se(x) if self.se is not None and self.placement == "pre" else x
        out = self.act1(self.bn1(self.conv1(out)))
        out = self.act2(self.bn2(self.conv2(out)))
        if self.se is not None and self.placement == "after_3x3":
            out = self.se(out)  # (N, width, H, W)
        return finish_block(self.conv3(out), self.bn3, shortcut, self.se, self.placement, self.act3)


@dataclass(frozen=True)
class ResNetConfig:
    """An ImageNet ResNet / ResNeXt / SENet-154 as data.

    Attributes:
        block: 'basic' (two 3x3 convolutions) or 'bottleneck' (1x1-3x3-1x1, expansion 4).
        layers: Blocks per stage (conv2_x..conv5_x, the paper's stages 2..5).
        groups: Cardinality of the grouped 3x3 convolution (ResNeXt's C; 1 for ResNet).
        base_width: Width per group at conv2_x (ResNeXt's d; 64 for ResNet).
        reduce_first: A bottleneck's first 1x1 has ``width // reduce_first`` channels (SENet-154: 2).
        stem: '7x7' (one 7x7 stride-2 convolution) or '3x3_deep' (three 3x3 convolutions,
            ``stem_width``-``stem_width``-``2 * stem_width``, as in SENet-154); then BN, ReLU, max pool.
        stem_width: Channels of the stem's (first) convolution.
        stem_pool: The stem's 3x3 stride-2 max pool: 'pad' (padding 1, as torchvision and timm) or
            'ceil' (no padding, ``ceil_mode=True``: the SE authors' Caffe models, whose converted
            checkpoints use the ``legacy`` naming). Both give H/4 at even sizes, from windows one pixel
            apart; no parameter changes.
        downsample: Shortcut projection of a strided block: '1x1' or '3x3' (SENet-154). A projection
            without stride (the first block of conv2_x) is always 1x1.
        stride_in_1x1: Stride of a downsampling bottleneck on its first 1x1 convolution ("v1", the
            paper's ResNets) instead of its 3x3 convolution ("v1.5", ResNeXt, SENet-154).
        drop_rate: Dropout before the classifier (SENet-154: 0.2).
        zero_init_last: Zero-init the last BN gamma of every residual branch.
        relu_before_se: Basic blocks only: a ReLU on the residual branch's output (after its second BN),
            before SE and the addition, as in timm's legacy SE-ResNet-18/34 (``SEResNetBlock``, whose
            checkpoints use the ``legacy`` naming); no parameter changes.
    """

    block: str = "bottleneck"
    layers: tuple[int, ...] = (3, 4, 6, 3)
    groups: int = 1
    base_width: int = 64
    reduce_first: int = 1
    stem: str = "7x7"
    stem_width: int = 64
    stem_pool: str = "pad"
    downsample: str = "1x1"
    stride_in_1x1: bool = True
    drop_rate: float = 0.0
    zero_init_last: bool = False
    relu_before_se: bool = False

    def __post_init__(self) -> None:
        check_choice("block", self.block, BLOCKS)
        check_choice("stem", self.stem, STEMS)
        check_choice("stem_pool", self.stem_pool, STEM_POOLS)
        check_choice("downsample", self.downsample, DOWNSAMPLES)
        if not self.layers or any(int(n) < 1 for n in self.layers):
            raise ValueError(f"layers must be a non-empty tuple of positive block counts, got {self.layers!r}")
        if self.block == "basic" and (self.groups != 1 or self.base_width != 64 or self.reduce_first != 1):
            raise ValueError("basic blocks support only groups=1, base_width=64, reduce_first=1")
        if self.relu_before_se and self.block != "basic":
            raise ValueError("relu_before_se applies to basic blocks only (block='basic')")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")


class ResNet(SENetModel):
    """ResNet / ResNeXt / SE-ResNet / SE-ResNeXt / SENet-154 for ImageNet-sized inputs (>= 32 px).

    Args:
        config: The network's ``ResNetConfig``.
        num_classes: Classifier size (0: ``forward`` returns the pooled features).
        in_chans: Input channels.
        attn: Which attention, where, with which arguments (``None``: none).

    Raises:
        ValueError: On an invalid config or placement.
    """

    def __init__(
        self,
        config: ResNetConfig,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttentionConfig | None = None,
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        check_choice("se_placement", attn.placement, PLACEMENTS)
        self.config = config
        self.drop_rate = config.drop_rate
        sw = config.stem_width
        if config.stem == "7x7":
            self.conv1: nn.Module = nn.Conv2d(in_chans, sw, 7, 2, 3, bias=False)
            inplanes = sw
        else:
            # SENet-154's stem (timm's 'deep' layout: conv1.0/.3/.6, BN at .1/.4, the last BN is bn1).
            self.conv1 = nn.Sequential(
                nn.Conv2d(in_chans, sw, 3, 2, 1, bias=False),
                nn.BatchNorm2d(sw),
                nn.ReLU(inplace=True),
                nn.Conv2d(sw, sw, 3, 1, 1, bias=False),
                nn.BatchNorm2d(sw),
                nn.ReLU(inplace=True),
                nn.Conv2d(sw, 2 * sw, 3, 1, 1, bias=False),
            )
            inplanes = 2 * sw
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        if config.stem_pool == "pad":
            self.maxpool = nn.MaxPool2d(3, 2, 1)  # (N, C, H/4, W/4) after the stem
        else:
            self.maxpool = nn.MaxPool2d(3, 2, 0, ceil_mode=True)  # (N, C, H/4, W/4) at even H, W

        if config.block == "basic":
            make_block: Callable[..., nn.Module] = functools.partial(BasicBlock, relu_before_se=config.relu_before_se)
            expansion = BasicBlock.expansion
        else:
            make_block = functools.partial(
                Bottleneck,
                groups=config.groups,
                base_width=config.base_width,
                reduce_first=config.reduce_first,
                stride_in_1x1=config.stride_in_1x1,
            )
            expansion = Bottleneck.expansion
        self.stage_names: list[str] = []
        for index, depth in enumerate(config.layers):
            stage = index + 2  # the stem is the paper's stage 1: conv2_x is stage 2
            planes = 64 * 2**index
            stride = 1 if index == 0 else 2
            blocks = []
            for b in range(int(depth)):
                outplanes = planes * expansion
                downsample = None
                if b == 0 and (stride != 1 or inplanes != outplanes):
                    kernel = 3 if stride != 1 and config.downsample == "3x3" else 1
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, outplanes, kernel, stride, kernel // 2, bias=False),
                        nn.BatchNorm2d(outplanes),
                    )
                attention = functools.partial(attn.create, stage=stage, block=b + 1)
                blocks.append(
                    make_block(
                        inplanes,
                        planes,
                        stride=stride if b == 0 else 1,
                        downsample=downsample,
                        attention=attention,
                        placement=attn.placement,
                    )
                )
                inplanes = outplanes
            name = f"layer{index + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
        self.num_features = inplanes
        self.reset_classifier(num_classes)
        self._init_weights(config.zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    m.zero_init_last()

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and conv2_x..conv5_x: (N, in_chans, H, W) -> (N, num_features, H/32, W/32)."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, as (module, output channels or None, stride), for
        ``senet.models.features``: the stem's ReLU at stride 2, then conv2_x.. at 4, 8, 16, 32."""
        steps: list[tuple[str, int | None, int]] = [
            ("conv1", None, 2), ("bn1", None, 2), ("act1", self.bn1.num_features, 2), ("maxpool", None, 4)
        ]
        expansion = BasicBlock.expansion if self.config.block == "basic" else Bottleneck.expansion
        for index, name in enumerate(self.stage_names):
            steps.append((name, 64 * 2**index * expansion, 4 * 2**index))
        return steps


def _register() -> None:
    depths = {
        18: ("basic", (2, 2, 2, 2)),
        34: ("basic", (3, 4, 6, 3)),
        50: ("bottleneck", (3, 4, 6, 3)),
        101: ("bottleneck", (3, 4, 23, 3)),
        152: ("bottleneck", (3, 8, 36, 3)),
    }
    for depth, (block, layers) in depths.items():
        config = ResNetConfig(block=block, layers=layers)
        register_model(
            f"resnet{depth}",
            ResNet,
            config,
            placements=PLACEMENTS,
            description=f"ResNet-{depth} (He et al. 2016), stride in the 1x1 conv (v1)",
        )
        register_model(
            f"se_resnet{depth}",
            ResNet,
            config,
            attention="se",
            placements=PLACEMENTS,
            description=f"SE-ResNet-{depth} (Hu et al. 2018), r=16",
        )
    for depth, layers in ((50, (3, 4, 6, 3)), (101, (3, 4, 23, 3))):
        config = ResNetConfig(layers=layers, groups=32, base_width=4, stride_in_1x1=False)
        register_model(
            f"resnext{depth}_32x4d",
            ResNet,
            config,
            placements=PLACEMENTS,
            description=f"ResNeXt-{depth} 32x4d (Xie et al. 2017), stride in the 3x3 conv",
        )
        register_model(
            f"se_resnext{depth}_32x4d",
            ResNet,
            config,
            attention="se",
            placements=PLACEMENTS,
            description=f"SE-ResNeXt-{depth} 32x4d (Hu et al. 2018), r=16",
        )
    senet154 = ResNetConfig(
        layers=(3, 8, 36, 3),
        groups=64,
        base_width=4,
        reduce_first=2,
        stem="3x3_deep",
        downsample="3x3",
        stride_in_1x1=False,
        drop_rate=0.2,
    )
    register_model(
        "senet154",
        ResNet,
        senet154,
        attention="se",
        placements=PLACEMENTS,
        description="SENet-154 (Hu et al. 2018): SE-ResNeXt 64x4d, deep stem, 3x3 projections, dropout 0.2",
    )


_register()

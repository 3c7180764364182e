"""The CIFAR residual networks of the paper's Tables 4-5, with or without Squeeze-and-Excitation.

* ResNet-20/32/44/56/110: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
  (arXiv:1512.03385), Sec. 4.2: a 3x3 stem of 16 channels, three stages of n basic blocks with 16, 32 and
  64 channels (depth 6n + 2). Shortcuts are identities everywhere and, where the shape changes, option A
  of the paper (subsample by 2 and pad the new channels with zeros: no parameters, ResNet-20 has
  0.27M parameters), as in the paper's CIFAR experiments and the widely used reproductions.
  ``shortcut='B'`` gives 1x1 projection shortcuts (conv + BN) instead. The zero channels go after the
  input's (``shortcut_pad='end'``) or half before and half after (``'both'``: akamaster's
  pytorch_resnet_cifar10, whose public checkpoints need it; the keys cannot show it).
* ResNet-1202: the same network with n = 200 (the paper's Table 6 deepest net, 19.4M parameters).
* ResNet-164: He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016
  (arXiv:1603.05027): pre-activation bottlenecks (BN-ReLU-conv, width 16/32/64, output 64/128/256,
  18 per stage), the stride on the first 1x1 convolution as in the authors' code.
* WRN-16-8: Zagoruyko, Komodakis, "Wide Residual Networks", BMVC 2016 (arXiv:1605.07146):
  pre-activation basic blocks of 128/256/512 channels, 2 per stage, optional dropout between the two
  convolutions (``block_drop_rate``; the paper's 0.3 where it uses dropout, off by default).

The pre-activation nets project the shortcut by a bare 1x1 convolution of the block's pre-activated
input when the shape changes (both papers' code) and end with BN-ReLU before the pooling.

SE placement in the post-activation ResNets is as in ``senet.models.resnet``. In the pre-activation
blocks, where the residual branch is F(x) = conv(...relu(bn(x))) and there is no final ReLU:

* ``'standard'``: y = x' + SE(F(x));  ``'post'``: y = SE(x' + F(x));  ``'identity'``: y = SE(x') + F(x).
* ``'pre'``: SE on the block input after the shared pre-activation BN-ReLU, on the residual branch only:
  a projected shortcut takes relu(bn1(x)) as without SE, so the shortcut is never scaled.
* ``'after_3x3'``: SE on the output of the (bottleneck's) 3x3 convolution; in a basic block on the output
  of its first 3x3 convolution.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F

from .base import SENetModel
from .registry import PLACEMENTS, AttentionConfig, register_model
from .resnet import AttentionFactory, BasicBlock, check_choice, merge_residual, no_attention, se_channels

CIFAR_BLOCKS = ("basic", "preact_basic", "preact_bottleneck")
SHORTCUTS = ("A", "B")
SHORTCUT_PADS = ("end", "both")


class PadShortcut(nn.Module):
    """Option A shortcut: subsample by ``stride`` and add zero channels (no parameters).

    Args:
        stride: The spatial subsampling factor.
        extra: The number of zero channels added.
        pad: ``'end'``: all after the input's channels; ``'both'``: ``extra // 2`` before and the rest
            after (akamaster's ``LambdaLayer``: ``F.pad(x, (0, 0, 0, 0, planes // 4, planes // 4))``).
    """

    def __init__(self, stride: int, extra: int, pad: str = "end") -> None:
        super().__init__()
        check_choice("shortcut_pad", pad, SHORTCUT_PADS)
        self.stride = stride
        self.extra = extra
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (N, C, ceil(H/s), ceil(W/s)), as the strided conv
        before = self.extra // 2 if self.pad == "both" else 0
        return F.pad(x, (0, 0, 0, 0, before, self.extra - before))  # (N, C + extra, ...)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra={self.extra}, pad={self.pad!r}"


class PreActBasicBlock(nn.Module):
    """Pre-activation basic block of the wide ResNets: BN-ReLU-conv3x3, BN-ReLU-(dropout)-conv3x3.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of the first convolution.
        shortcut: 'A' (zero padding) or 'B' (1x1 projection of the pre-activated input) when the shape
            changes; an identity otherwise.
        shortcut_pad: Option A's zero channels: after the input's (``'end'``) or on both sides (``'both'``).
        drop_rate: Dropout between the two convolutions.
        attention: ``attention(channels) -> module or None``, the block's SE (labelled by the caller).
        placement: Where SE goes, one of ``PLACEMENTS``.
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int = 1,
        shortcut: str = "B",
        shortcut_pad: str = "end",
        drop_rate: float = 0.0,
        attention: AttentionFactory = no_attention,
        placement: str = "standard",
    ) -> None:
        super().__init__()
        check_choice("se_placement", placement, PLACEMENTS)
        self.placement = placement
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.se = attention(se_channels(placement, inplanes=inplanes, mid=planes, outplanes=planes))
        self.downsample, self.project = _preact_shortcut(inplanes, planes, stride, shortcut, shortcut_pad)

    def zero_init_last(self) -> None:
        """Zeroes the weights of the last convolution so that the block starts as the identity."""
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(out if self.project else x)
        if self.se is not None and self.placement == "pre":
            out = self.se(out)
        out = self.conv1(out)
        if self.se is not None and self.placement == "after_3x3":
            out = self.se(out)
        out = self.conv2(self.drop(self.act2(self.bn2(out))))
        return merge_residual(shortcut, out, self.se, self.placement)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (ResNet-164): BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1.

    Args:
        inplanes: Input channels.
        planes: Output channels (the bottleneck width is ``planes // 4``).
        stride: The block's stride, on the first 1x1 convolution if ``stride_in_1x1`` else on the 3x3.
        shortcut: 'A' (zero padding) or 'B' (1x1 projection of the pre-activated input) when the shape
            changes; an identity otherwise.
        shortcut_pad: Option A's zero channels: after the input's (``'end'``) or on both sides (``'both'``).
        stride_in_1x1: Where the stride goes (the authors' code: the 1x1).
        attention: ``attention(channels) -> module or None``, the block's SE (labelled by the caller).
        placement: Where SE goes, one of ``PLACEMENTS``.
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int = 1,
        shortcut: str = "B",
        shortcut_pad: str = "end",
        stride_in_1x1: bool = True,
        attention: AttentionFactory = no_attention,
        placement: str = "standard",
    ) -> None:
        super().__init__()
        check_choice("se_placement", placement, PLACEMENTS)
        self.placement = placement
        width = planes // 4
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(inplanes, width, 1, stride_1x1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, stride_3x3, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.act3 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width, planes, 1, bias=False)
        self.se = attention(se_channels(placement, inplanes=inplanes, mid=width, outplanes=planes))
        self.downsample, self.project = _preact_shortcut(inplanes, planes, stride, shortcut, shortcut_pad)

    def zero_init_last(self) -> None:
        """Zeroes the weights of the last convolution so that the block starts as the identity."""
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(out if self.project else x)
        if self.se is not None and self.placement == "pre":
            out = self.se(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        if self.se is not None and self.placement == "after_3x3":
            out = self.se(out)  # (N, width, H, W)
        out = self.conv3(self.act3(self.bn3(out)))
        return merge_residual(shortcut, out, self.se, self.placement)


def _preact_shortcut(
    inplanes: int, planes: int, stride: int, shortcut: str, pad: str
) -> tuple[nn.Module | None, bool]:
    # Returns the shortcut module and whether it takes the pre-activated input (a projection does;
    # option A pads the raw input, as the identity passes it).
    if stride == 1 and inplanes == planes:
        return None, False
    if shortcut == "A" and planes >= inplanes:
        return PadShortcut(stride, planes - inplanes, pad), False
    return nn.Conv2d(inplanes, planes, 1, stride, bias=False), True


@dataclass(frozen=True)
class CifarResNetConfig:
    """A CIFAR residual network (32x32 inputs, three stages) as data.

    Attributes:
        block: 'basic' (post-activation, ResNet-20..110), 'preact_basic' (WRN) or 'preact_bottleneck'
            (ResNet-164).
        layers: Blocks per stage (the paper's stages 2..4; the stem is stage 1).
        widths: Output channels of each stage.
        stem_width: Channels of the 3x3 stem convolution.
        shortcut: Where the shape changes: 'A' (subsample + zero padding, no parameters) or 'B' (1x1
            projection; conv + BN in post-activation blocks, a bare conv in pre-activation ones).
        shortcut_pad: Option A only: the zero channels after the input's (``'end'``) or split before and
            after (``'both'``, as akamaster's pytorch_resnet_cifar10 and its public checkpoints).
        stride_in_1x1: Pre-activation bottlenecks: the stride on the first 1x1 (else on the 3x3).
        block_drop_rate: Dropout between the two convolutions of a pre-activation basic block (WRN).
        drop_rate: Dropout before the classifier.
        zero_init_last: Zero-init the last BN gamma (post-activation) or the last convolution
            (pre-activation) of every residual branch.
    """

    block: str = "basic"
    layers: tuple[int, ...] = (3, 3, 3)
    widths: tuple[int, ...] = (16, 32, 64)
    stem_width: int = 16
    shortcut: str = "A"
    shortcut_pad: str = "end"
    stride_in_1x1: bool = True
    block_drop_rate: float = 0.0
    drop_rate: float = 0.0
    zero_init_last: bool = False

    def __post_init__(self) -> None:
        check_choice("block", self.block, CIFAR_BLOCKS)
        check_choice("shortcut", self.shortcut, SHORTCUTS)
        check_choice("shortcut_pad", self.shortcut_pad, SHORTCUT_PADS)
        if not self.layers or len(self.layers) != len(self.widths) or any(int(n) < 1 for n in self.layers):
            raise ValueError(
                f"layers and widths must be non-empty and of equal length, got {self.layers!r}, {self.widths!r}"
            )
        if self.block == "preact_bottleneck" and any(w % 4 for w in self.widths):
            raise ValueError(f"pre-activation bottleneck widths must be multiples of 4, got {self.widths!r}")
        for name in ("block_drop_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")


class CifarResNet(SENetModel):
    """ResNet-20..110, pre-activation ResNet-164 and WRN-16-8 for CIFAR (any input of >= 8 px).

    Args:
        config: The network's ``CifarResNetConfig``.
        num_classes: Classifier size (0: ``forward`` returns the pooled features).
        in_chans: Input channels.
        attn: Which attention, where, with which arguments (``None``: none).

    Raises:
        ValueError: On an invalid config or placement.
    """

    default_input_size = (3, 32, 32)  # CIFAR images

    def __init__(
        self,
        config: CifarResNetConfig,
        *,
        num_classes: int = 10,
        in_chans: int = 3,
        attn: AttentionConfig | None = None,
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        check_choice("se_placement", attn.placement, PLACEMENTS)
        self.config = config
        self.drop_rate = config.drop_rate
        preact = config.block != "basic"
        self.conv1 = nn.Conv2d(in_chans, config.stem_width, 3, 1, 1, bias=False)
        # Post-activation nets normalise the stem; pre-activation blocks do it themselves.
        self.bn1 = nn.Identity() if preact else nn.BatchNorm2d(config.stem_width)
        self.act1 = nn.Identity() if preact else nn.ReLU(inplace=True)
        inplanes = config.stem_width
        self.stage_names: list[str] = []
        for index, (depth, planes) in enumerate(zip(config.layers, config.widths, strict=True)):
            blocks = []
            for b in range(int(depth)):
                stride = 2 if index > 0 and b == 0 else 1
                common = dict(
                    stride=stride,
                    attention=functools.partial(attn.create, stage=index + 2, block=b + 1),
                    placement=attn.placement,
                )
                if config.block == "basic":
                    block: nn.Module = BasicBlock(
                        inplanes,
                        planes,
                        downsample=_post_shortcut(inplanes, planes, stride, config.shortcut, config.shortcut_pad),
                        **common,
                    )
                elif config.block == "preact_basic":
                    block = PreActBasicBlock(
                        inplanes,
                        planes,
                        shortcut=config.shortcut,
                        shortcut_pad=config.shortcut_pad,
                        drop_rate=config.block_drop_rate,
                        **common,
                    )
                else:
                    block = PreActBottleneck(
                        inplanes,
                        planes,
                        shortcut=config.shortcut,
                        shortcut_pad=config.shortcut_pad,
                        stride_in_1x1=config.stride_in_1x1,
                        **common,
                    )
                blocks.append(block)
                inplanes = planes
            name = f"layer{index + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
        # The pre-activation nets' final BN-ReLU (their last block ends with a convolution).
        self.bn_final = nn.BatchNorm2d(inplanes) if preact else nn.Identity()
        self.act_final = nn.ReLU(inplace=True) if preact else nn.Identity()
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
                if isinstance(m, (BasicBlock, PreActBasicBlock, PreActBottleneck)):
                    m.zero_init_last()

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and the three stages: (N, in_chans, H, W) -> (N, num_features, H/4, W/4)."""
        x = self.act1(self.bn1(self.conv1(x)))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.act_final(self.bn_final(x))

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, as (module, output channels or None, stride), for
        ``senet.models.features``: the stages at strides 1, 2, 4 (the last one after the final BN-ReLU of
        the pre-activation networks)."""
        steps: list[tuple[str, int | None, int]] = [("conv1", None, 1), ("bn1", None, 1), ("act1", None, 1)]
        for index, (name, width) in enumerate(zip(self.stage_names, self.config.widths, strict=True)):
            steps.append((name, int(width), 2**index))
        if not isinstance(self.bn_final, nn.Identity):
            steps += [("bn_final", None, steps[-1][2]), ("act_final", self.num_features, steps[-1][2])]
        return steps


def _post_shortcut(inplanes: int, planes: int, stride: int, shortcut: str, pad: str) -> nn.Module | None:
    if stride == 1 and inplanes == planes:
        return None
    if shortcut == "A" and planes >= inplanes:
        return PadShortcut(stride, planes - inplanes, pad)
    return nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))


def _register_pair(name: str, config: CifarResNetConfig, description: str) -> None:
    for prefix, attention in (("", None), ("se_", "se")):
        register_model(
            prefix + name,
            CifarResNet,
            config,
            attention=attention,
            placements=PLACEMENTS,
            num_classes=10,
            description=("SE-" if attention else "") + description,
        )


def _register() -> None:
    for depth in (20, 32, 44, 56, 110, 1202):
        n = (depth - 2) // 6
        _register_pair(
            f"cifar_resnet{depth}",
            CifarResNetConfig(layers=(n, n, n)),
            f"ResNet-{depth} for CIFAR (He et al. 2016), option A shortcuts",
        )
    _register_pair(
        "preact_resnet164",
        CifarResNetConfig(block="preact_bottleneck", layers=(18, 18, 18), widths=(64, 128, 256), shortcut="B"),
        "pre-activation ResNet-164 for CIFAR (He et al. 2016b)",
    )
    _register_pair(
        "wrn16_8",
        CifarResNetConfig(block="preact_basic", layers=(2, 2, 2), widths=(128, 256, 512), shortcut="B"),
        "wide ResNet 16-8 for CIFAR (Zagoruyko & Komodakis 2016)",
    )


_register()

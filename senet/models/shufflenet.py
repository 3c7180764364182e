"""ShuffleNet (v1), with or without Squeeze-and-Excitation.

Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices", CVPR 2018 (arXiv:1707.01083), Table 1 and Fig. 2: a 3x3 stride-2 convolution (24 channels)
and a 3x3 stride-2 max pool, three stages of ShuffleNet units, global average pooling and one linear
layer. A unit is a 1x1 group convolution (g groups) with BN-ReLU, a channel shuffle, a 3x3 depthwise
convolution with BN, and a 1x1 group convolution with BN; the bottleneck has a quarter of the unit's
output channels. A stride-1 unit adds its input (y = relu(x + F(x))); the first unit of a stage has
stride 2 and concatenates a 3x3 stride-2 average pool of its input (y = relu([avgpool(x), F(x)])).
The first pointwise convolution of stage 2 is not grouped (its input has only 24 channels).
SE-ShuffleNet is the SE paper's Table 3 (Hu et al., "Squeeze-and-Excitation Networks",
arXiv:1709.01507).

Stages are the ShuffleNet paper's own (its Table 1): stage 1 is the stem (conv1 and the max pool),
stages 2, 3, 4 hold 4, 8 and 4 units (output 240, 480, 960 channels at g=3, 1x).

SE placement: on the residual branch of each unit, after its last BN and before the addition or
concatenation, as SE-ResNet does: y = relu(x + SE(F(x))) or relu([avgpool(x), SE(F(x))]). Unit u of
stage s is labelled ``SE_<s>_<u>`` (``SE_2_1`` .. ``SE_4_4``); in the first unit of a stage SE sees the
branch's ``out - in`` channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._blocks import ConvBnAct, init_weights
from .base import SENetModel
from .registry import AttentionConfig, register_model


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleaves the channels of ``groups`` groups (the paper's Fig. 1c): (N, g*n, H, W) -> same shape.

    Args:
        x: The input (N, C, H, W), C divisible by ``groups``.
        groups: g.

    Returns:
        The input with channel ``i * n + j`` moved to ``j * g + i``.
    """
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


@dataclass(frozen=True)
class ShuffleNetConfig:
    """A ShuffleNet (v1) as data.

    Attributes:
        groups: g, the groups of the pointwise convolutions.
        stage_channels: Output channels of stages 2, 3, 4 (the paper's Table 1 at 1x).
        stage_units: Units per stage.
        stem_width: Output channels of conv1.
        drop_rate: Dropout before the classifier.
    """

    groups: int = 3
    stage_channels: tuple[int, ...] = (240, 480, 960)
    stage_units: tuple[int, ...] = (4, 8, 4)
    stem_width: int = 24
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        if len(self.stage_channels) != len(self.stage_units):
            raise ValueError("stage_channels and stage_units must have the same length")
        for c in self.stage_channels:
            if c % (4 * self.groups):
                raise ValueError(f"stage channels must be divisible by 4 * groups = {4 * self.groups}, got {c}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")


class ShuffleUnit(nn.Module):
    """One ShuffleNet unit (Fig. 2b for stride 1, Fig. 2c for stride 2), SE on its residual branch.

    Args:
        in_channels: Input channels.
        out_channels: Output channels of the unit (the branch has ``out - in`` at stride 2).
        stride: 1 (add the input) or 2 (concatenate its average pool).
        groups: g.
        group_first: Whether the first pointwise convolution is grouped (not in the first unit).
        attention: The labelled attention module for the branch's channels, or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        groups: int,
        group_first: bool,
        attention: nn.Module | None,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.groups = groups
        branch = out_channels - in_channels if stride == 2 else out_channels
        mid = out_channels // 4
        self.conv1 = ConvBnAct(in_channels, mid, 1, groups=groups if group_first else 1)
        self.conv2 = ConvBnAct(mid, mid, 3, stride=stride, groups=mid, act=None)  # depthwise, no ReLU
        self.conv3 = ConvBnAct(mid, branch, 1, groups=groups, act=None)
        self.se = attention
        self.act = nn.ReLU(inplace=True)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else None

    def forward(self, x: Tensor) -> Tensor:
        out = channel_shuffle(self.conv1(x), self.groups)
        out = self.conv3(self.conv2(out))  # (N, branch, H/stride, W/stride)
        if self.se is not None:
            out = self.se(out)
        if self.shortcut is None:
            return self.act(x + out)
        return self.act(torch.cat([self.shortcut(x), out], 1))


class ShuffleNet(SENetModel):
    """ShuffleNet v1 (Zhang et al. 2018, arXiv:1707.01083), optionally with SE on every unit's residual
    branch (Hu et al. 2018, arXiv:1709.01507).

    Args:
        config: The network's ``ShuffleNetConfig``.
        num_classes: Classifier size (0: ``forward`` returns the pooled features).
        in_chans: Input channels.
        attn: Which attention, in which stages, with which arguments (``None``: none).
    """

    def __init__(
        self,
        config: ShuffleNetConfig,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttentionConfig | None = None,
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        self.config = config
        self.drop_rate = config.drop_rate
        channels = config.stem_width
        # (N, 24, H/4, W/4)
        self.stem = nn.Sequential(ConvBnAct(in_chans, channels, 3, stride=2), nn.MaxPool2d(3, 2, 1))
        stages = []
        for index, (width, units) in enumerate(zip(config.stage_channels, config.stage_units, strict=True)):
            stage = index + 2  # the stem is stage 1
            layers = []
            for u in range(units):
                stride = 2 if u == 0 else 1
                branch = width - channels if stride == 2 else width
                layers.append(
                    ShuffleUnit(
                        channels,
                        width,
                        stride=stride,
                        groups=config.groups,
                        group_first=not (index == 0 and u == 0),
                        attention=attn.create(branch, stage, u + 1),
                    )
                )
                channels = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and stages 2-4: (N, in_chans, H, W) -> (N, num_features, H/32, W/32)."""
        return self.stages(self.stem(x))

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, as (module, output channels or None, stride), for
        ``senet.models.features``: conv1 at stride 2, its max pool at 4, stages 2-4 at 8, 16, 32."""
        stem = self.stem[0].conv.out_channels
        steps: list[tuple[str, int | None, int]] = [("stem.0", stem, 2), ("stem.1", stem, 4)]
        stride = 4
        for index, stage in enumerate(self.stages):
            for unit in stage:
                stride *= unit.stride
            steps.append((f"stages.{index}", self.config.stage_channels[index], stride))
        return steps


def _register() -> None:
    config = ShuffleNetConfig()
    register_model(
        "shufflenet_v1_g3", ShuffleNet, config, description="ShuffleNet 1x, g=3 (Zhang et al. 2018)"
    )
    register_model(
        "se_shufflenet_v1_g3", ShuffleNet, config, attention="se", attention_kwargs={"reduction": 16},
        description="SE-ShuffleNet 1x, g=3 (Hu et al. 2018): SE on every unit's residual branch, r=16",
    )


_register()

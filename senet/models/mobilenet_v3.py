"""MobileNetV3-Large, whose design includes Squeeze-and-Excitation.

Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam, "Searching for
MobileNetV3", ICCV 2019 (arXiv:1905.02244), Table 1: a 3x3 stride-2 convolution (16, hard-swish),
15 inverted-residual blocks (1x1 expansion, kxk depthwise, optional SE, 1x1 linear projection; a
shortcut when the shape is kept), a 1x1 convolution to 960, global average pooling, a 1x1 "convolution"
to 1280 (a linear layer on the pooled features) with hard-swish, dropout 0.2 and the classifier.

SE is part of the design, in 8 of the 15 blocks, with the network's own settings: it sits after the
depthwise convolution (on the expanded channels C_exp), its hidden width is
``make_divisible(C_exp / 4, 8)``, its activation is ReLU and its gate the hard sigmoid relu6(x + 3) / 6
(Hu et al., "Squeeze-and-Excitation Networks", arXiv:1709.01507, with the MobileNetV3 paper's Sec. 5.3).
So ``mobilenet_v3_large`` defaults to attention ``'se'`` with ``reduction=4, divisor=8,
gate='hard_sigmoid'``; ``attention=None`` removes it from those blocks and ``attention='eca'`` (any
registered attention) replaces it there.

Stages are runs of blocks with the same output width, as in the EfficientNet paper's table: stage 1 is
the stem, stages 2-7 hold the blocks of width 16 (1 block), 24 (2), 40 (3), 80 (4), 112 (2), 160 (3),
stage 8 the 1x1 convolution to 960. Block b of stage s is labelled ``SE_<s>_<b>``; the design's SE
blocks are ``SE_4_1`` .. ``SE_4_3``, ``SE_6_1``, ``SE_6_2``, ``SE_7_1`` .. ``SE_7_3``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..layers.common import make_divisible
from ._blocks import ConvBnAct, init_weights, inverted_residual_plan
from .base import SENetModel
from .registry import AttentionConfig, register_model

_ACTS = {"RE": "relu", "HS": "hard_swish"}

# Table 1 of the MobileNetV3 paper, one tuple per stage, one row per block:
# (kernel, expanded channels, output channels, SE, activation, stride).
_LARGE = (
    ((3, 16, 16, False, "RE", 1),),
    ((3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1)),
    ((5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1)),
    ((3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
     (3, 184, 80, False, "HS", 1)),
    ((3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1)),
    ((5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1)),
)


@dataclass(frozen=True)
class MobileNetV3Config:
    """A MobileNetV3 as data.

    Attributes:
        stages: Per stage, its blocks as (kernel, expanded channels, output channels, SE, activation
            'RE'/'HS', stride), at width 1.0.
        stem_width: Output channels of the stem.
        last_width: Output channels of the last 1x1 convolution (``num_features``).
        head_width: Width of the hidden linear layer of the head.
        width_multiplier: Scales every width, rounded to a multiple of 8.
        drop_rate: Dropout before the classifier.
        bn_eps: Batch norm epsilon (the TensorFlow models' 1e-3).
    """

    stages: tuple[tuple[tuple[int, int, int, bool, str, int], ...], ...] = _LARGE
    stem_width: int = 16
    last_width: int = 960
    head_width: int = 1280
    width_multiplier: float = 1.0
    drop_rate: float = 0.2
    bn_eps: float = 1e-3

    def __post_init__(self) -> None:
        for blocks in self.stages:
            for block in blocks:
                if block[4] not in _ACTS:
                    raise ValueError(f"unknown activation {block[4]!r}; valid: {', '.join(_ACTS)}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")


class InvertedResidual(nn.Module):
    """1x1 expansion, kxk depthwise, attention (``se``), 1x1 linear projection, shortcut if shape is kept.

    Args:
        in_channels: Input channels.
        expanded: C_exp, channels of the depthwise convolution (no expansion conv when equal to input).
        out_channels: Output channels.
        kernel_size: Depthwise kernel size.
        stride: Depthwise stride.
        act: Activation name after the expansion and depthwise convolutions.
        attention: The labelled attention module for ``expanded`` channels, or ``None``.
        bn_eps: Batch norm epsilon.
    """

    def __init__(
        self,
        in_channels: int,
        expanded: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        act: str,
        attention: nn.Module | None,
        bn_eps: float,
    ) -> None:
        super().__init__()
        self.use_shortcut = stride == 1 and in_channels == out_channels
        self.conv_pw = None if expanded == in_channels else ConvBnAct(in_channels, expanded, 1, act=act, bn_eps=bn_eps)
        self.conv_dw = ConvBnAct(
            expanded, expanded, kernel_size, stride=stride, groups=expanded, act=act, bn_eps=bn_eps
        )
        self.se = attention
        self.conv_pwl = ConvBnAct(expanded, out_channels, 1, act=None, bn_eps=bn_eps)

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.conv_pw is None else self.conv_pw(x)
        out = self.conv_dw(out)  # (N, C_exp, H/stride, W/stride)
        if self.se is not None:
            out = self.se(out)
        out = self.conv_pwl(out)
        return x + out if self.use_shortcut else out


class MobileNetV3(SENetModel):
    """MobileNetV3 (Howard et al. 2019, arXiv:1905.02244) with its SE blocks (Hu et al. 2018,
    arXiv:1709.01507) or any other attention in their place.

    ``forward_features`` ends with the 1x1 convolution to 960 channels; ``forward_head`` pools, runs the
    hidden linear layer (1280, hard-swish) and dropout, then ``fc``; ``pre_logits=True`` returns the
    hidden layer's output (N, head_hidden_size).

    Args:
        config: The network's ``MobileNetV3Config``.
        num_classes: Classifier size (0: ``forward`` returns the hidden layer's output).
        in_chans: Input channels.
        attn: Which attention, in which stages, with which arguments (``None``: none).
    """

    def __init__(
        self,
        config: MobileNetV3Config,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttentionConfig | None = None,
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        self.config = config
        self.drop_rate = config.drop_rate
        width = lambda c: make_divisible(c * config.width_multiplier, 8)
        eps = config.bn_eps
        channels = width(config.stem_width)
        self.stem = ConvBnAct(in_chans, channels, 3, stride=2, act="hard_swish", bn_eps=eps)  # (N, 16, H/2, W/2)
        stages = []
        for index, blocks in enumerate(config.stages):
            stage = index + 2  # the stem is stage 1
            layers = []
            for b, (kernel, expanded, out, use_se, act, stride) in enumerate(blocks, start=1):
                expanded, out = width(expanded), width(out)
                attention = attn.create(expanded, stage, b) if use_se else attn.absent(stage)  # a stage even without SE
                layers.append(
                    InvertedResidual(
                        channels, expanded, out, kernel_size=kernel, stride=stride, act=_ACTS[act],
                        attention=attention, bn_eps=eps,
                    )
                )
                channels = out
            stages.append(nn.Sequential(*layers))
        last = width(config.last_width)
        stages.append(ConvBnAct(channels, last, 1, act="hard_swish", bn_eps=eps))  # stage 8
        self.stages = nn.Sequential(*stages)
        self.num_features = last
        self.head_hidden_size = config.head_width
        self.conv_head = nn.Linear(last, config.head_width)  # the paper's 1x1 conv on the pooled 1x1 map
        self.head_act = nn.Hardswish(inplace=True)
        self.reset_classifier(num_classes)
        init_weights(self, linear_std=0.01)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem, blocks and the last 1x1 convolution: (N, in_chans, H, W) -> (N, 960, H/32, W/32)."""
        return self.stages(self.stem(x))

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, for ``senet.models.features`` (see ``inverted_residual_plan``)."""
        return inverted_residual_plan(self)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pooling, the hidden linear layer, dropout and the classifier.

        Args:
            x: The output of ``forward_features``.
            pre_logits: Return the hidden layer's output (N, head_hidden_size) instead of the logits.
        """
        x = self.head_act(self.conv_head(x.mean((2, 3))))  # (N, 1280)
        x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the final linear layer (1280 -> classes) for ``num_classes`` classes (0: identity).

        Raises:
            ValueError: If ``num_classes`` is negative.
        """
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()


# The network's own SE: hidden = make_divisible(C_exp / 4, 8), ReLU, hard sigmoid.
MOBILENET_V3_SE = {"reduction": 4, "divisor": 8, "activation": "relu", "gate": "hard_sigmoid"}


def _register() -> None:
    register_model(
        "mobilenet_v3_large", MobileNetV3, MobileNetV3Config(), attention="se",
        attention_kwargs=MOBILENET_V3_SE,
        description="MobileNetV3-Large 1.0 (Howard et al. 2019), its own SE (C/4 to x8, hard sigmoid)",
    )


_register()

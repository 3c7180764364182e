"""MobileNet (v1), with or without Squeeze-and-Excitation.

Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto, Adam, "MobileNets: Efficient Convolutional
Neural Networks for Mobile Vision Applications", 2017 (arXiv:1704.04861), Table 1: a 3x3 stride-2
convolution, then 13 depthwise-separable blocks (3x3 depthwise conv-BN-ReLU, 1x1 pointwise conv-BN-ReLU),
global average pooling and one linear layer. SE-MobileNet is the SE paper's Table 3 (Hu et al.,
"Squeeze-and-Excitation Networks", arXiv:1709.01507).

Stages follow the output resolution, as in the ResNets (stride 2 = stage 1 ... stride 32 = stage 5):

=====  ==========  ===========================================  ================
stage  resolution  layers                                       SE labels
=====  ==========  ===========================================  ================
1      112x112     stem conv (32), block 1 (64)                 SE_1_1
2      56x56       blocks 2 (stride 2) and 3 (128)              SE_2_1, SE_2_2
3      28x28       blocks 4 (stride 2) and 5 (256)              SE_3_1, SE_3_2
4      14x14       blocks 6 (stride 2) to 11 (512)              SE_4_1 .. SE_4_6
5      7x7         blocks 12 (stride 2) and 13 (1024)           SE_5_1, SE_5_2
=====  ==========  ===========================================  ================

SE placement: after each depthwise-separable block, on the output of its pointwise conv-BN-ReLU
(the block has no shortcut, so this is the SE paper's placement for non-residual networks).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ._blocks import ConvBnAct, init_weights
from .base import SENetModel
from .registry import AttentionConfig, register_model

# (output channels, stride) of the 13 depthwise-separable blocks, grouped into stages 1..5.
_MOBILENET_V1 = (
    ((64, 1),),
    ((128, 2), (128, 1)),
    ((256, 2), (256, 1)),
    ((512, 2),) + ((512, 1),) * 5,
    ((1024, 2), (1024, 1)),
)


@dataclass(frozen=True)
class MobileNetConfig:
    """A MobileNet (v1) as data.

    Attributes:
        stages: Per stage, the (output channels, stride) of its depthwise-separable blocks at width 1.0.
        stem_width: Output channels of the stem's 3x3 stride-2 convolution at width 1.0.
        width_multiplier: alpha of the paper; every width is ``int(width * alpha)``.
        drop_rate: Dropout before the classifier.
    """

    stages: tuple[tuple[tuple[int, int], ...], ...] = _MOBILENET_V1
    stem_width: int = 32
    width_multiplier: float = 1.0
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be positive, got {self.width_multiplier!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv-BN-ReLU, 1x1 pointwise conv-BN-ReLU, then the block's attention (``se``).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the depthwise convolution.
        attention: The labelled attention module for ``out_channels``, or ``None``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, attention: nn.Module | None) -> None:
        super().__init__()
        self.conv_dw = ConvBnAct(in_channels, in_channels, 3, stride=stride, groups=in_channels)
        self.conv_pw = ConvBnAct(in_channels, out_channels, 1)
        self.se = attention

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_pw(self.conv_dw(x))
        return x if self.se is None else self.se(x)


class MobileNet(SENetModel):
    """MobileNet v1 (Howard et al. 2017, arXiv:1704.04861), optionally with SE after every
    depthwise-separable block (Hu et al. 2018, arXiv:1709.01507).

    Args:
        config: The network's ``MobileNetConfig``.
        num_classes: Classifier size (0: ``forward`` returns the pooled features).
        in_chans: Input channels.
        attn: Which attention, in which stages, with which arguments (``None``: none).
    """

    def __init__(
        self,
        config: MobileNetConfig,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttentionConfig | None = None,
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        self.config = config
        self.drop_rate = config.drop_rate
        alpha = config.width_multiplier
        channels = int(config.stem_width * alpha)
        self.stem = ConvBnAct(in_chans, channels, 3, stride=2)  # (N, 32, H/2, W/2)
        stages = []
        for s, blocks in enumerate(config.stages, start=1):
            layers = []
            for b, (width, stride) in enumerate(blocks, start=1):
                out = int(width * alpha)
                layers.append(DepthwiseSeparable(channels, out, stride=stride, attention=attn.create(out, s, b)))
                channels = out
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and the 13 blocks: (N, in_chans, H, W) -> (N, num_features, H/32, W/32)."""
        return self.stages(self.stem(x))

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, as (module, output channels or None, stride), for
        ``senet.models.features``: the stem and every block (the last block at each stride is a feature)."""
        stride = 2
        steps: list[tuple[str, int | None, int]] = [("stem", self.stem.conv.out_channels, stride)]
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage):
                stride *= block.conv_dw.conv.stride[0]
                steps.append((f"stages.{s}.{b}", block.conv_pw.conv.out_channels, stride))
        return steps


def _register() -> None:
    config = MobileNetConfig()
    register_model(
        "mobilenet_v1", MobileNet, config, description="MobileNet 1.0-224 (Howard et al. 2017)"
    )
    register_model(
        "se_mobilenet_v1", MobileNet, config, attention="se", attention_kwargs={"reduction": 16},
        description="SE-MobileNet 1.0-224 (Hu et al. 2018): SE after every depthwise-separable block, r=16",
    )


_register()

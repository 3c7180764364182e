"""VGG-16 with batch normalisation, with or without Squeeze-and-Excitation.

Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015
(arXiv:1409.1556), configuration D, with a batch norm after every convolution as the SE paper does to
train it from scratch (Hu et al., "Squeeze-and-Excitation Networks", arXiv:1709.01507, Table 2).

Stages. Stage s is the paper's conv-block s (conv{s}_1 .. conv{s}_k, followed by a 2x2 max pool), so
the first block (the stem) is stage 1 and there are five stages. Block b of stage s is convolution
conv{s}_b.

SE placement. "The SE block can be integrated into standard architectures such as VGGNet by insertion
after the non-linearity following each convolution" (SE paper, Sec. 3.3): every conv-BN-ReLU is followed
by SE, labelled ``SE_<s>_<b>`` after conv{s}_b (13 modules, ``SE_1_1`` .. ``SE_5_3``).

The classifier is torchvision's: adaptive average pooling to 7x7 (so any input of 32 px or more works),
fc6 and fc7 (4096 units, ReLU, dropout 0.5) and the final linear layer ``fc``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ._blocks import init_weights
from .base import SENetModel
from .registry import AttentionConfig, register_model


@dataclass(frozen=True)
class VGGConfig:
    """A VGG network as data.

    Attributes:
        stages: The output channels of each convolution, one tuple per stage (conv-block); every stage
            ends in a 2x2 max pool.
        hidden_features: Width of fc6 and fc7.
        pool_size: The feature map is average-pooled to ``pool_size`` x ``pool_size`` before fc6.
        drop_rate: Dropout after fc6 and fc7.
    """

    stages: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
    hidden_features: int = 4096
    pool_size: int = 7
    drop_rate: float = 0.5

    def __post_init__(self) -> None:
        if not self.stages or any(not s or any(int(c) < 1 for c in s) for s in self.stages):
            raise ValueError(f"stages must be non-empty tuples of positive widths, got {self.stages!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")


class VGGLayer(nn.Sequential):
    """conv-BN-ReLU, then the layer's attention module (child ``se``) when it has one.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        attention: The labelled attention module, or ``None``.
    """

    def __init__(self, in_channels: int, out_channels: int, attention: nn.Module | None) -> None:
        super().__init__()
        # The bias before BN is redundant but part of the reference network (torchvision's vgg16_bn,
        # 138,365,992 parameters), so its checkpoints load as they are.
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        if attention is not None:
            self.se = attention  # (N, C, H, W) -> (N, C, H, W)


class VGG(SENetModel):
    """VGG with batch norm (Simonyan & Zisserman 2015, arXiv:1409.1556), optionally with SE after every
    convolution (Hu et al. 2018, arXiv:1709.01507).

    ``forward_features`` returns the last max pool's output (N, 512, H/32, W/32); ``forward_head`` pools it
    to 7x7 and runs fc6, fc7 and ``fc``; ``pre_logits=True`` returns fc7's output (N, 4096).

    Args:
        config: The network's ``VGGConfig``.
        num_classes: Classifier size (0: ``forward`` returns fc7's output).
        in_chans: Input channels.
        attn: Which attention, in which stages, with which arguments (``None``: none).
    """

    def __init__(
        self, config: VGGConfig, *, num_classes: int = 1000, in_chans: int = 3, attn: AttentionConfig | None = None
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        self.config = config
        self.drop_rate = config.drop_rate
        stages = []
        channels = in_chans
        for s, widths in enumerate(config.stages, start=1):
            layers: list[nn.Module] = []
            for b, width in enumerate(widths, start=1):
                layers.append(VGGLayer(channels, width, attn.create(width, s, b)))
                channels = width
            layers.append(nn.MaxPool2d(2, 2))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.num_features = channels
        self.head_hidden_size = config.hidden_features
        self.pool = nn.AdaptiveAvgPool2d(config.pool_size)
        self.fc6 = nn.Linear(channels * config.pool_size**2, config.hidden_features)
        self.fc7 = nn.Linear(config.hidden_features, config.hidden_features)
        self.reset_classifier(num_classes)
        init_weights(self, linear_std=0.01)

    def forward_features(self, x: Tensor) -> Tensor:
        """Five conv-blocks: (N, in_chans, H, W) -> (N, num_features, H/32, W/32)."""
        return self.stages(x)

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, as (module, output channels or None, stride), for
        ``senet.models.features``: every conv layer and max pool. The full-resolution layers (conv1_x) are
        not offered as features, so the features are conv2_2, conv3_3, conv4_3, conv5_3 (before their max
        pools) and pool5, at strides 2 to 32."""
        steps: list[tuple[str, int | None, int]] = []
        stride, channels = 1, 0
        for s, stage in enumerate(self.stages):
            for b, layer in enumerate(stage):
                if isinstance(layer, nn.MaxPool2d):
                    stride *= 2
                else:
                    channels = layer.conv.out_channels
                steps.append((f"stages.{s}.{b}", channels if stride > 1 else None, stride))
        return steps

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pools to 7x7, then fc6, fc7 (ReLU, dropout) and the classifier.

        Args:
            x: The output of ``forward_features``.
            pre_logits: Return fc7's output (N, head_hidden_size) instead of the logits.
        """
        x = self.pool(x).flatten(1)  # (N, 512 * 7 * 7)
        for fc in (self.fc6, self.fc7):
            x = nn.functional.dropout(nn.functional.relu(fc(x), inplace=True), self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the final linear layer (fc7 -> classes) for ``num_classes`` classes (0: identity).

        Raises:
            ValueError: If ``num_classes`` is negative.
        """
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()


def _register() -> None:
    config = VGGConfig()
    register_model("vgg16_bn", VGG, config, description="VGG-16 with batch norm (Simonyan & Zisserman 2015)")
    register_model(
        "se_vgg16_bn", VGG, config, attention="se", attention_kwargs={"reduction": 16},
        description="SE-VGG-16 with batch norm (Hu et al. 2018): SE after every conv, r=16",
    )


_register()

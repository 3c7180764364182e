"""DenseNet-121, with or without Squeeze-and-Excitation.

Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks", CVPR 2017
(arXiv:1608.06993), DenseNet-BC with growth rate k = 32: a 7x7 stride-2 convolution and a 3x3 stride-2
max pool, four dense blocks of 6, 12, 24 and 16 layers (BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k,
concatenated to the block's input), transitions (BN-ReLU-1x1 conv halving the channels, 2x2 average
pool) between them, a final BN-ReLU, global average pooling and one linear layer. SE as in Hu et al.,
"Squeeze-and-Excitation Networks" (arXiv:1709.01507).

Stages follow the ResNets' numbering by resolution: stage 1 is the stem (112x112, then pooled to
56x56), stages 2, 3, 4, 5 are dense blocks 1-4 (56, 28, 14, 7 px at 224), the transition before a
dense block belonging to its stage.

SE placement: one SE module on each dense block's output (after the concatenation of all its layers,
before the transition), labelled ``SE_<stage>_1``: ``SE_2_1`` (256 channels), ``SE_3_1`` (512),
``SE_4_1`` (1024), ``SE_5_1`` (1024, before the final BN). A dense layer adds only k = 32 channels and
has no residual branch, so the block's output is where SE recalibrates the features it passes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._blocks import init_weights
from .base import SENetModel
from .registry import AttentionConfig, register_model


@dataclass(frozen=True)
class DenseNetConfig:
    """A DenseNet-BC as data.

    Attributes:
        growth_rate: k, the channels each dense layer adds.
        block_layers: Dense layers per block.
        stem_width: Output channels of the 7x7 stem convolution.
        bottleneck_factor: The 1x1 convolution of a dense layer outputs ``bottleneck_factor * k``.
        compression: theta; a transition keeps ``int(C * theta)`` channels.
        drop_rate: Dropout before the classifier.
    """

    growth_rate: int = 32
    block_layers: tuple[int, ...] = (6, 12, 24, 16)
    stem_width: int = 64
    bottleneck_factor: int = 4
    compression: float = 0.5
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        if not self.block_layers or any(int(n) < 1 for n in self.block_layers):
            raise ValueError(f"block_layers must be positive layer counts, got {self.block_layers!r}")
        if not 0.0 < self.compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {self.compression!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (to ``bottleneck_factor * k``), BN-ReLU-3x3 conv (to k): (N, C, H, W) -> (N, k, H, W).

    Args:
        in_channels: Input channels C.
        growth_rate: k.
        bottleneck_factor: Width of the 1x1 convolution, in multiples of k.
    """

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_factor: int) -> None:
        super().__init__()
        mid = bottleneck_factor * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, growth_rate, 3, 1, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(torch.relu(self.norm1(x)))
        return self.conv2(torch.relu(self.norm2(x)))


class DenseBlock(nn.Module):
    """Dense layers, each fed the concatenation of the block input and all earlier layers' outputs,
    then the block's attention module (``se``) on the concatenated output.

    Args:
        in_channels: Input channels C.
        num_layers: L; the output has C + L * k channels.
        growth_rate: k.
        bottleneck_factor: Width of each layer's 1x1 convolution, in multiples of k.
        attention: ``attention(out_channels) -> labelled module or None``.
    """

    def __init__(
        self,
        in_channels: int,
        num_layers: int,
        *,
        growth_rate: int,
        bottleneck_factor: int,
        attention: nn.Module | None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck_factor) for i in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * growth_rate
        self.se = attention

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        x = torch.cat(features, 1)  # (N, C + L * k, H, W)
        return x if self.se is None else self.se(x)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (compression) and a 2x2 average pool.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.act = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(SENetModel):
    """DenseNet-BC (Huang et al. 2017, arXiv:1608.06993), optionally with SE on every dense block's
    output (Hu et al. 2018, arXiv:1709.01507).

    Args:
        config: The network's ``DenseNetConfig``.
        num_classes: Classifier size (0: ``forward`` returns the pooled features).
        in_chans: Input channels.
        attn: Which attention, in which stages, with which arguments (``None``: none).
    """

    def __init__(
        self,
        config: DenseNetConfig,
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
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, channels, 7, 2, 3, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )  # (N, 64, H/4, W/4)
        stages = []
        for index, num_layers in enumerate(config.block_layers):
            stage = index + 2  # the stem is stage 1
            layers: list[nn.Module] = []
            if index > 0:
                out = int(channels * config.compression)
                layers.append(Transition(channels, out))
                channels = out
            out = channels + num_layers * config.growth_rate
            layers.append(
                DenseBlock(
                    channels,
                    num_layers,
                    growth_rate=config.growth_rate,
                    bottleneck_factor=config.bottleneck_factor,
                    attention=attn.create(out, stage, 1),
                )
            )
            channels = out
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self)
        if isinstance(self.fc, nn.Linear):
            nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem, dense blocks and transitions, final BN-ReLU: (N, in_chans, H, W) -> (N, 1024, H/32, W/32)."""
        return self.act(self.norm(self.stages(self.stem(x))))

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, as (module, output channels or None, stride), for
        ``senet.models.features``: the stem's ReLU at stride 2, dense blocks 1-3 at 4, 8, 16, the final
        BN-ReLU at 32."""
        stem = self.stem[1].num_features
        steps: list[tuple[str, int | None, int]] = [
            ("stem.0", None, 2), ("stem.1", None, 2), ("stem.2", stem, 2), ("stem.3", None, 4)
        ]
        for index, stage in enumerate(self.stages):
            steps.append((f"stages.{index}", stage[-1].out_channels, 4 * 2**index))
        return steps + [("norm", None, steps[-1][2]), ("act", self.num_features, steps[-1][2])]


def _register() -> None:
    config = DenseNetConfig()
    register_model("densenet121", DenseNet, config, description="DenseNet-121, k=32 (Huang et al. 2017)")
    register_model(
        "se_densenet121", DenseNet, config, attention="se", attention_kwargs={"reduction": 16},
        description="SE-DenseNet-121: SE on each dense block's output, r=16",
    )


_register()

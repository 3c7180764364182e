"""Inception-ResNet-v2, with or without Squeeze-and-Excitation.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", AAAI 2017 (arXiv:1602.07261), Fig. 15-19: a stem of unpadded convolutions,
residual Inception blocks A (35x35 at 299 px), B (17x17) and C (8x8) separated by the reduction
modules, each block's branch scaled before the addition. The widths, the scales (0.17, 0.10, 0.20)
and the block counts (10 A, 20 B, 10 C; the last C block without ReLU) are those of the public
TensorFlow-slim model (55,843,464 parameters), whose stem ends in "Mixed_5b" (320 channels) rather
than the paper's Fig. 3 stem; that model scales its very last C block by 1.0, not 0.20
(``last_block_scale=1.0``, see ``senet.convert.naming_options``). SE as in Hu et al.,
"Squeeze-and-Excitation Networks" (arXiv:1709.01507), whose Table 2 reports SE-Inception-ResNet-v2 at
299 px.

Stages follow the output stride, as in the ResNets (stage n ends at stride 2^n): stages 1 and 2 are
the stem up to stride 4 (conv 1a-2b, then max pool, conv 3b, 4a), stage 3 is the max pool to stride 8,
Mixed_5b and the 10 A blocks, stage 4 reduction A and the 20 B blocks, stage 5 reduction B, the 10 C
blocks and the final 1x1 convolution to 1536.

SE placement: on the residual branch of every Inception-ResNet block, after its 1x1 up-projection and
before the scaling and the addition: y = relu(x + scale * SE(F(x))), as SE-ResNet does. Block b of
stage s is labelled ``SE_<s>_<b>``: ``SE_3_1`` .. ``SE_3_10``, ``SE_4_1`` .. ``SE_4_20``,
``SE_5_1`` .. ``SE_5_10``. The stem and the reduction modules carry no SE.

The unpadded convolutions need an input of at least 75x75 pixels (the default is 299); smaller inputs
(down to 32 px, the zoo's common minimum) are zero-padded to 75 on each side that falls short.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._blocks import ConvBnAct, check_image_input, init_weights
from .base import SENetModel
from .registry import AttentionConfig, register_model

MIN_INPUT_SIZE = 75
DEFAULT_INPUT_SIZE = 299


def _conv(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], **kwargs: int) -> nn.Module:
    # Every convolution of the network is conv-BN(eps 1e-3)-ReLU.
    return ConvBnAct(in_channels, out_channels, kernel_size, bn_eps=1e-3, **kwargs)


@dataclass(frozen=True)
class InceptionResNetConfig:
    """An Inception-ResNet-v2 as data.

    Attributes:
        blocks: Number of A, B and C blocks (the last C block has no final ReLU).
        scales: The residual scaling of A, B and C blocks (the paper's Fig. 20).
        num_features: Output channels of the final 1x1 convolution.
        drop_rate: Dropout before the classifier (the paper keeps 0.8 of the units in training).
        last_block_scale: The residual scaling of the very last C block (the one without ReLU); ``None``:
            the C blocks' scale. The TF-slim model and its ports (checkpoints in the ``tf_slim`` naming)
            build that block (``block8``) with its default scale, 1.0.
    """

    blocks: tuple[int, int, int] = (10, 20, 10)
    scales: tuple[float, float, float] = (0.17, 0.10, 0.20)
    num_features: int = 1536
    drop_rate: float = 0.0
    last_block_scale: float | None = None

    def __post_init__(self) -> None:
        if len(self.blocks) != 3 or any(int(n) < 1 for n in self.blocks):
            raise ValueError(f"blocks must be three positive counts (A, B, C), got {self.blocks!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")
        if self.last_block_scale is not None and (
            isinstance(self.last_block_scale, bool) or not isinstance(self.last_block_scale, (int, float))
        ):
            raise ValueError(f"last_block_scale must be a number or None, got {self.last_block_scale!r}")


class Mixed5b(nn.Module):
    """The stem's last module: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg pool-1x1, 192 -> 320 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _conv(192, 96, 1)
        self.branch1 = nn.Sequential(_conv(192, 48, 1), _conv(48, 64, 5))
        self.branch2 = nn.Sequential(_conv(192, 64, 1), _conv(64, 96, 3), _conv(96, 96, 3))
        self.branch3 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _conv(192, 64, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class ReductionA(nn.Module):
    """Reduction A (Fig. 7, k=256, l=256, m=384, n=384): 320 -> 1088 channels, stride 2, unpadded."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _conv(320, 384, 3, stride=2, padding=0)
        self.branch1 = nn.Sequential(_conv(320, 256, 1), _conv(256, 256, 3), _conv(256, 384, 3, stride=2, padding=0))
        self.branch2 = nn.MaxPool2d(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class ReductionB(nn.Module):
    """Reduction B (Fig. 18): 1088 -> 2080 channels, stride 2, unpadded."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(_conv(1088, 256, 1), _conv(256, 384, 3, stride=2, padding=0))
        self.branch1 = nn.Sequential(_conv(1088, 256, 1), _conv(256, 288, 3, stride=2, padding=0))
        self.branch2 = nn.Sequential(_conv(1088, 256, 1), _conv(256, 288, 3), _conv(288, 320, 3, stride=2, padding=0))
        self.branch3 = nn.MaxPool2d(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionResNetBlock(nn.Module):
    """y = act(x + scale * SE(up(concat(branches(x))))): the A, B and C blocks (Fig. 16, 17, 19).

    Args:
        kind: 'A' (35x35, 320 channels), 'B' (17x17, 1088) or 'C' (8x8, 2080).
        scale: The residual scaling.
        attention: The labelled attention module for the block's channels, or ``None``.
        activate: Apply the final ReLU (the network's very last C block does not).
    """

    def __init__(self, kind: str, *, scale: float, attention: nn.Module | None, activate: bool = True) -> None:
        super().__init__()
        self.scale = scale
        if kind == "A":
            channels = 320
            branches = [
                _conv(320, 32, 1),
                nn.Sequential(_conv(320, 32, 1), _conv(32, 32, 3)),
                nn.Sequential(_conv(320, 32, 1), _conv(32, 48, 3), _conv(48, 64, 3)),
            ]
            mid = 128
        elif kind == "B":
            channels = 1088
            branches = [
                _conv(1088, 192, 1),
                nn.Sequential(_conv(1088, 128, 1), _conv(128, 160, (1, 7)), _conv(160, 192, (7, 1))),
            ]
            mid = 384
        elif kind == "C":
            channels = 2080
            branches = [
                _conv(2080, 192, 1),
                nn.Sequential(_conv(2080, 192, 1), _conv(192, 224, (1, 3)), _conv(224, 256, (3, 1))),
            ]
            mid = 448
        else:
            raise ValueError(f"unknown block kind {kind!r}; valid: A, B, C")
        self.branches = nn.ModuleList(branches)
        self.up = nn.Conv2d(mid, channels, 1)  # linear 1x1 with bias, no BN (the reference model)
        self.se = attention
        self.act = nn.ReLU(inplace=True) if activate else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.up(torch.cat([branch(x) for branch in self.branches], 1))  # (N, C, H, W)
        if self.se is not None:
            out = self.se(out)
        out = x + self.scale * out
        return out if self.act is None else self.act(out)


class InceptionResNetV2(SENetModel):
    """Inception-ResNet-v2 (Szegedy et al. 2017, arXiv:1602.07261), optionally with SE on the residual
    branch of every Inception-ResNet block (Hu et al. 2018, arXiv:1709.01507).

    Args:
        config: The network's ``InceptionResNetConfig``.
        num_classes: Classifier size (0: ``forward`` returns the pooled features).
        in_chans: Input channels.
        attn: Which attention, in which stages, with which arguments (``None``: none).
    """

    default_input_size = (3, DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    min_input_size = MIN_INPUT_SIZE

    def __init__(
        self,
        config: InceptionResNetConfig,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttentionConfig | None = None,
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        self.config = config
        self.drop_rate = config.drop_rate
        self.stem = nn.Sequential(
            OrderedDict(
                conv2d_1a=_conv(in_chans, 32, 3, stride=2, padding=0),  # stage 1: (N, 32, 149, 149) at 299
                conv2d_2a=_conv(32, 32, 3, padding=0),
                conv2d_2b=_conv(32, 64, 3),
                maxpool_3a=nn.MaxPool2d(3, 2),  # stage 2: (N, 64, 73, 73)
                conv2d_3b=_conv(64, 80, 1),
                conv2d_4a=_conv(80, 192, 3, padding=0),
            )
        )
        n_a, n_b, n_c = config.blocks
        s_a, s_b, s_c = config.scales
        self.stage3 = nn.Sequential(
            nn.MaxPool2d(3, 2),  # (N, 192, 35, 35)
            Mixed5b(),
            *[InceptionResNetBlock("A", scale=s_a, attention=attn.create(320, 3, b)) for b in range(1, n_a + 1)],
        )
        self.stage4 = nn.Sequential(
            ReductionA(),  # (N, 1088, 17, 17)
            *[InceptionResNetBlock("B", scale=s_b, attention=attn.create(1088, 4, b)) for b in range(1, n_b + 1)],
        )
        s_last = s_c if config.last_block_scale is None else config.last_block_scale
        self.stage5 = nn.Sequential(
            ReductionB(),  # (N, 2080, 8, 8)
            *[
                InceptionResNetBlock(
                    "C", scale=s_c if b < n_c else s_last, attention=attn.create(2080, 5, b), activate=b < n_c
                )
                for b in range(1, n_c + 1)
            ],
            _conv(2080, config.num_features, 1),
        )
        self.num_features = config.num_features
        self.reset_classifier(num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem, A, B and C blocks: (N, in_chans, H, W) -> (N, 1536, h, w), 8x8 at 299 px.

        Inputs below 75x75 pixels are zero-padded (centred) to 75 on the short side(s), since the stem's
        unpadded convolutions need that much.
        """
        return self.stage5(self.stage4(self.stage3(self.stem(self.pad_input(x)))))

    @staticmethod
    def pad_input(x: Tensor) -> Tensor:
        """Checks that ``x`` is (N, C, H, W) and zero-pads it (centred) to at least 75x75 pixels."""
        check_image_input(x, "inception_resnet_v2")
        dh, dw = max(0, MIN_INPUT_SIZE - x.shape[-2]), max(0, MIN_INPUT_SIZE - x.shape[-1])
        if dh or dw:
            x = nn.functional.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return x

    def feature_plan(self) -> list[tuple[object, int | None, int]]:
        """``forward_features`` step by step, as (module or function, output channels or None, stride), for
        ``senet.models.features``: conv 2b at stride 2, conv 4a at 4, the A, B and C stages at 8, 16, 32
        (strides nominal: the unpadded convolutions make the maps a little smaller than H / stride)."""
        stem = [("conv2d_1a", None, 2), ("conv2d_2a", None, 2), ("conv2d_2b", 64, 2), ("maxpool_3a", None, 4),
                ("conv2d_3b", None, 4), ("conv2d_4a", 192, 4)]  # fmt: skip
        return [
            (self.pad_input, None, 1),
            *[(f"stem.{name}", chs, stride) for name, chs, stride in stem],
            ("stage3", 320, 8),
            ("stage4", 1088, 16),
            ("stage5", self.num_features, 32),
        ]


def _register() -> None:
    config = InceptionResNetConfig()
    register_model(
        "inception_resnet_v2", InceptionResNetV2, config,
        description="Inception-ResNet-v2, 299 px (Szegedy et al. 2017)",
    )
    register_model(
        "se_inception_resnet_v2", InceptionResNetV2, config, attention="se",
        attention_kwargs={"reduction": 16},
        description="SE-Inception-ResNet-v2, 299 px (Hu et al. 2018): SE on every residual branch, r=16",
    )


_register()

"""BN-Inception (Inception with batch normalisation), with or without Squeeze-and-Excitation.

Ioffe, Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate
Shift", ICML 2015 (arXiv:1502.03167), Fig. 5: GoogLeNet with batch norm after every convolution, the
5x5 convolutions replaced by two 3x3 and modules 3c and 4e reducing the resolution. The widths are
those of the released Caffe model that the SE paper builds on (Hu et al., "Squeeze-and-Excitation
Networks", arXiv:1709.01507, Fig. 2 and Table 2), which has 608 channels after modules 4c and 4d
where the table of the BN paper prints 576. The first layer is a plain 7x7 convolution (the BN paper
mentions a depthwise-separable one; the released model does not use it).

Stages are the network's own numbering: stage 1 is conv1 and its max pool (112x112 at 224 px), stage 2
conv2 (1x1 reduce and 3x3) and its max pool (56x56), stages 3, 4, 5 the Inception modules 3a-3c
(28x28), 4a-4e (14x14) and 5a-5b (7x7).

SE placement: on the output of each Inception module (after the concatenation of its branches), the
SE-Inception module of the SE paper's Fig. 2; module 3a is ``SE_3_1``, 4e ``SE_4_5``, 5b ``SE_5_2``
(10 modules).

Every max pool of stride 2 has padding 1 (instead of Caffe's ceil rounding) so that the branches of the
reducing modules 3c and 4e keep the same size at any input size; at 224 px the sizes are Caffe's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._blocks import ConvBnAct, init_weights
from .base import SENetModel
from .registry import AttentionConfig, register_model

# Inception modules as in the BN paper's Fig. 5 (Caffe model widths), per stage:
# (#1x1, #3x3 reduce, #3x3, #double 3x3 reduce, #double 3x3, pool, #pool proj, stride).
# A reducing module (stride 2) has no 1x1 branch and passes the max-pooled input through.
_BN_INCEPTION = (
    (
        (64, 64, 64, 64, 96, "avg", 32, 1),  # 3a -> 256
        (64, 64, 96, 64, 96, "avg", 64, 1),  # 3b -> 320
        (0, 128, 160, 64, 96, "max", 0, 2),  # 3c -> 576
    ),
    (
        (224, 64, 96, 96, 128, "avg", 128, 1),  # 4a -> 576
        (192, 96, 128, 96, 128, "avg", 128, 1),  # 4b -> 576
        (160, 128, 160, 128, 160, "avg", 128, 1),  # 4c -> 608
        (96, 128, 192, 160, 192, "avg", 128, 1),  # 4d -> 608
        (0, 128, 192, 192, 256, "max", 0, 2),  # 4e -> 1056
    ),
    (
        (352, 192, 320, 160, 224, "avg", 128, 1),  # 5a -> 1024
        (352, 192, 320, 192, 224, "max", 128, 1),  # 5b -> 1024
    ),
)


@dataclass(frozen=True)
class InceptionConfig:
    """A BN-Inception network as data.

    Attributes:
        stages: Inception modules of stages 3, 4, 5, as (#1x1, #3x3 reduce, #3x3, #double 3x3 reduce,
            #double 3x3, pool 'avg'/'max', #pool projection, stride); 0 drops a 1x1 branch or projection.
        stem_widths: Output channels of conv1 (7x7), conv2's 1x1 reduce and conv2's 3x3.
        drop_rate: Dropout before the classifier.
    """

    stages: tuple[tuple[tuple[int, int, int, int, int, str, int, int], ...], ...] = _BN_INCEPTION
    stem_widths: tuple[int, int, int] = (64, 64, 192)
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        for modules in self.stages:
            for spec in modules:
                if spec[5] not in ("avg", "max"):
                    raise ValueError(f"pool must be 'avg' or 'max', got {spec[5]!r}")
                if spec[7] == 2 and (spec[0] or spec[6]):
                    raise ValueError("a reducing (stride-2) module has no 1x1 branch and no pool projection")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")


class InceptionModule(nn.Module):
    """Four parallel branches concatenated (1x1; 1x1-3x3; 1x1-3x3-3x3; pool-1x1), then attention (``se``).

    Args:
        in_channels: Input channels.
        spec: (#1x1, #3x3 reduce, #3x3, #double 3x3 reduce, #double 3x3, pool, #pool proj, stride).
        attention: ``attention(out_channels) -> labelled module or None``.
    """

    def __init__(
        self,
        in_channels: int,
        spec: tuple[int, int, int, int, int, str, int, int],
        attention: Callable[[int], nn.Module | None],
    ) -> None:
        super().__init__()
        n1x1, n3x3_reduce, n3x3, ndouble_reduce, ndouble, pool, nproj, stride = spec
        self.branch_1x1 = ConvBnAct(in_channels, n1x1, 1) if n1x1 else None
        self.branch_3x3 = nn.Sequential(
            ConvBnAct(in_channels, n3x3_reduce, 1), ConvBnAct(n3x3_reduce, n3x3, 3, stride=stride)
        )
        self.branch_double_3x3 = nn.Sequential(
            ConvBnAct(in_channels, ndouble_reduce, 1),
            ConvBnAct(ndouble_reduce, ndouble, 3),
            ConvBnAct(ndouble, ndouble, 3, stride=stride),
        )
        if stride == 2:
            pool_layer: nn.Module = nn.MaxPool2d(3, 2, 1)
        elif pool == "avg":
            pool_layer = nn.AvgPool2d(3, 1, 1)
        else:
            pool_layer = nn.MaxPool2d(3, 1, 1)
        self.branch_pool = nn.Sequential(pool_layer, ConvBnAct(in_channels, nproj, 1)) if nproj else pool_layer
        self.out_channels = n1x1 + n3x3 + ndouble + (nproj or in_channels)
        self.se = attention(self.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch_3x3(x), self.branch_double_3x3(x), self.branch_pool(x)]
        if self.branch_1x1 is not None:
            branches.insert(0, self.branch_1x1(x))
        x = torch.cat(branches, 1)  # (N, out_channels, H/stride, W/stride)
        return x if self.se is None else self.se(x)


class BNInception(SENetModel):
    """BN-Inception (Ioffe & Szegedy 2015, arXiv:1502.03167), optionally with SE on every Inception
    module's output (Hu et al. 2018, arXiv:1709.01507).

    Args:
        config: The network's ``InceptionConfig``.
        num_classes: Classifier size (0: ``forward`` returns the pooled features).
        in_chans: Input channels.
        attn: Which attention, in which stages, with which arguments (``None``: none).
    """

    def __init__(
        self,
        config: InceptionConfig,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttentionConfig | None = None,
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        self.config = config
        self.drop_rate = config.drop_rate
        w1, w2_reduce, w2 = config.stem_widths
        self.stem = nn.Sequential(
            nn.Sequential(ConvBnAct(in_chans, w1, 7, stride=2), nn.MaxPool2d(3, 2, 1)),  # stage 1: (N, 64, H/4, W/4)
            nn.Sequential(ConvBnAct(w1, w2_reduce, 1), ConvBnAct(w2_reduce, w2, 3), nn.MaxPool2d(3, 2, 1)),  # stage 2
        )  # (N, 192, H/8, W/8)
        channels = w2
        stages = []
        for s, modules in enumerate(config.stages, start=3):
            layers = []
            for b, spec in enumerate(modules, start=1):
                module = InceptionModule(channels, spec, functools.partial(attn.create, stage=s, block=b))
                layers.append(module)
                channels = module.out_channels
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """conv1, conv2 and the Inception modules: (N, in_chans, H, W) -> (N, 1024, H/32, W/32)."""
        return self.stages(self.stem(x))

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, as (module, output channels or None, stride), for
        ``senet.models.features``: conv1 at stride 2, conv2's 3x3 at 4, then every Inception module (the
        last one before a reduction is the feature: 3b at 8, 4d at 16, 5b at 32)."""
        w1, w2 = self.stem[0][0].conv.out_channels, self.stem[1][1].conv.out_channels
        steps: list[tuple[str, int | None, int]] = [
            ("stem.0.0", w1, 2), ("stem.0.1", w1, 4), ("stem.1.0", None, 4), ("stem.1.1", w2, 4), ("stem.1.2", w2, 8)
        ]
        stride = 8
        for s, stage in enumerate(self.stages):
            for b, module in enumerate(stage):
                stride *= module.branch_3x3[1].conv.stride[0]
                steps.append((f"stages.{s}.{b}", module.out_channels, stride))
        return steps


def _register() -> None:
    config = InceptionConfig()
    register_model("bn_inception", BNInception, config, description="BN-Inception (Ioffe & Szegedy 2015)")
    register_model(
        "se_bn_inception", BNInception, config, attention="se", attention_kwargs={"reduction": 16},
        description="SE-BN-Inception (Hu et al. 2018): SE on every Inception module's output, r=16",
    )


_register()

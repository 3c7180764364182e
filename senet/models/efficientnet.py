"""EfficientNet-B0, whose design includes Squeeze-and-Excitation.

Tan, Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
(arXiv:1905.11946), Table 1: a 3x3 stride-2 convolution (32), 16 MBConv blocks in 7 stages (1x1
expansion, kxk depthwise, SE, 1x1 linear projection; a shortcut with stochastic depth when the shape
is kept), a 1x1 convolution to 1280, global average pooling, dropout 0.2 and the classifier. SiLU
(swish) everywhere.

SE is part of every MBConv block, with the network's own settings: it sits after the depthwise
convolution (on the expanded channels), its hidden width is ``max(1, int(C_in * 0.25))`` where C_in is
the block's *input* width (not the expanded width SE sees), its activation is SiLU and its gate the
sigmoid (Hu et al., "Squeeze-and-Excitation Networks", arXiv:1709.01507; the reference TensorFlow
code's ``se_ratio``). ``efficientnet_b0`` therefore defaults to attention ``'se'`` with
``activation='silu', gate='sigmoid'``, and the config field ``se_ratio=0.25`` gives every
``SqueezeExcite`` of the network ``hidden=max(1, int(C_in * se_ratio))``. An explicit ``reduction=r``
keeps the rule with ``se_ratio = 1 / r``; an explicit ``hidden`` or ``se_ratio=None`` (a model option)
lets SE size itself from its own channels. ``attention=None`` gives the network without SE,
``attention='eca'`` (any registered attention, with its own defaults) puts that module where SE was.

Stages are the EfficientNet paper's (its Table 1): stage 1 is the stem, stages 2-8 the MBConv stages
(widths 16, 24, 40, 80, 112, 192, 320; 1, 2, 2, 3, 3, 4, 1 blocks), stage 9 the 1x1 convolution to 1280.
Block b of stage s is labelled ``SE_<s>_<b>``: ``SE_2_1`` .. ``SE_8_1``, 16 modules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from ..layers.registry import get_attention
from ..layers.squeeze_excite import SqueezeExcite
from ._blocks import ConvBnAct, drop_path, init_weights, inverted_residual_plan
from .base import SENetModel
from .registry import AttentionConfig, register_model

# Table 1 of the EfficientNet paper, stages 2-8: (expansion, kernel, stride, output channels, blocks).
_B0 = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


@dataclass(frozen=True)
class EfficientNetConfig:
    """An EfficientNet as data (B0's widths and depths; no compound scaling is applied here).

    Attributes:
        stages: Per MBConv stage, (expansion, kernel, stride, output channels, blocks).
        stem_width: Output channels of the stem.
        last_width: Output channels of the final 1x1 convolution (``num_features``).
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth: block i of n drops its branch with probability
            ``drop_path_rate * i / n`` in training (survival probability 0.8 at the last block).
        bn_eps: Batch norm epsilon (the TensorFlow models' 1e-3).
        se_ratio: SE's hidden width is ``max(1, int(C_in * se_ratio))``, C_in the block's input width
            (applies to ``SqueezeExcite`` only); ``None``: SE's own rule on the expanded channels.
    """

    stages: tuple[tuple[int, int, int, int, int], ...] = _B0
    stem_width: int = 32
    last_width: int = 1280
    drop_rate: float = 0.2
    drop_path_rate: float = 0.2
    bn_eps: float = 1e-3
    se_ratio: float | None = 0.25

    def __post_init__(self) -> None:
        if self.se_ratio is not None and not 0.0 < self.se_ratio <= 1.0:
            raise ValueError(f"se_ratio must be in (0, 1] or None, got {self.se_ratio!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate!r}")


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion (SiLU), kxk depthwise (SiLU), attention (``se``), 1x1
    linear projection; a shortcut with stochastic depth when stride is 1 and the width is kept.

    Args:
        in_channels: C_in.
        out_channels: Output channels.
        expansion: The depthwise convolution has ``C_in * expansion`` channels (no expansion conv at 1).
        kernel_size: Depthwise kernel size.
        stride: Depthwise stride.
        attention: The labelled attention module for the expanded channels, or ``None``.
        drop_path_rate: Probability of dropping the branch (shortcut blocks, training only).
        bn_eps: Batch norm epsilon.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expansion: int,
        kernel_size: int,
        stride: int,
        attention: nn.Module | None,
        drop_path_rate: float,
        bn_eps: float,
    ) -> None:
        super().__init__()
        expanded = in_channels * expansion
        self.use_shortcut = stride == 1 and in_channels == out_channels
        self.drop_path_rate = drop_path_rate
        self.conv_pw = ConvBnAct(in_channels, expanded, 1, act="silu", bn_eps=bn_eps) if expansion != 1 else None
        self.conv_dw = ConvBnAct(
            expanded, expanded, kernel_size, stride=stride, groups=expanded, act="silu", bn_eps=bn_eps
        )
        self.se = attention
        self.conv_pwl = ConvBnAct(expanded, out_channels, 1, act=None, bn_eps=bn_eps)

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.conv_pw is None else self.conv_pw(x)
        out = self.conv_dw(out)  # (N, C_in * expansion, H/stride, W/stride)
        if self.se is not None:
            out = self.se(out)
        out = self.conv_pwl(out)
        if self.use_shortcut:
            return x + drop_path(out, self.drop_path_rate, self.training)
        return out


def _se_hidden_rule(attn: AttentionConfig, se_ratio: float | None) -> Callable[[int], int] | None:
    """Returns ``C_in -> hidden`` for the network's SE, or ``None`` where the module sizes itself."""
    # The width rule belongs to the network's SE: other attention modules keep their own defaults.
    factory = get_attention(attn.attention)
    factory = factory.func if isinstance(factory, functools.partial) else factory
    if se_ratio is None or not (isinstance(factory, type) and issubclass(factory, SqueezeExcite)):
        return None
    kwargs = dict(attn.kwargs)
    if "hidden" in kwargs:
        return None
    if "reduction" in kwargs:
        reduction = kwargs["reduction"]
        return lambda c_in: max(1, int(c_in / reduction))
    return lambda c_in: max(1, int(c_in * se_ratio))


class EfficientNet(SENetModel):
    """EfficientNet (Tan & Le 2019, arXiv:1905.11946) with its SE blocks (Hu et al. 2018,
    arXiv:1709.01507) or any other attention in their place.

    Args:
        config: The network's ``EfficientNetConfig``.
        num_classes: Classifier size (0: ``forward`` returns the pooled features).
        in_chans: Input channels.
        attn: Which attention, in which stages, with which arguments (``None``: none). SE's hidden
            width follows ``config.se_ratio`` (see the module doc).
    """

    def __init__(
        self,
        config: EfficientNetConfig,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        attn: AttentionConfig | None = None,
    ) -> None:
        super().__init__()
        attn = attn or AttentionConfig()
        se_hidden = _se_hidden_rule(attn, config.se_ratio)
        self.config = config
        self.drop_rate = config.drop_rate
        eps = config.bn_eps
        channels = config.stem_width
        self.stem = ConvBnAct(in_chans, channels, 3, stride=2, act="silu", bn_eps=eps)  # (N, 32, H/2, W/2)
        total = sum(stage[4] for stage in config.stages)
        index = 0
        stages = []
        for s, (expansion, kernel, stride, out, repeats) in enumerate(config.stages, start=2):
            layers = []
            for b in range(1, repeats + 1):
                overrides = {} if se_hidden is None else {"hidden": se_hidden(channels)}
                layers.append(
                    MBConv(
                        channels, out, expansion=expansion, kernel_size=kernel, stride=stride if b == 1 else 1,
                        attention=attn.create(channels * expansion, s, b, **overrides),
                        drop_path_rate=config.drop_path_rate * index / total, bn_eps=eps,
                    )
                )
                channels = out
                index += 1
            stages.append(nn.Sequential(*layers))
        stages.append(ConvBnAct(channels, config.last_width, 1, act="silu", bn_eps=eps))  # stage 9
        self.stages = nn.Sequential(*stages)
        self.num_features = config.last_width
        self.reset_classifier(num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem, MBConv stages and the 1x1 convolution: (N, in_chans, H, W) -> (N, 1280, H/32, W/32)."""
        return self.stages(self.stem(x))

    def feature_plan(self) -> list[tuple[str, int | None, int]]:
        """``forward_features`` step by step, for ``senet.models.features`` (see ``inverted_residual_plan``)."""
        return inverted_residual_plan(self)


# The network's own SE: hidden = max(1, int(C_in * 0.25)) from the block's input width, SiLU, sigmoid.
# (The width rule is the config's ``se_ratio``.)
EFFICIENTNET_SE = {"activation": "silu", "gate": "sigmoid"}


def _register() -> None:
    register_model(
        "efficientnet_b0", EfficientNet, EfficientNetConfig(), attention="se",
        attention_kwargs=EFFICIENTNET_SE,
        description="EfficientNet-B0 (Tan & Le 2019), its own SE (C_in/4, SiLU, sigmoid)",
    )


_register()

"""Building blocks shared by the non-ResNet families: convolution-BN-activation, weight init, drop path."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers.create_act import ActLike, create_act
from .base import ATTENTION_LABEL


def _same_padding(kernel_size: int | tuple[int, int]) -> int | tuple[int, int]:
    if isinstance(kernel_size, int):
        return (kernel_size - 1) // 2
    return ((kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2)


class ConvBnAct(nn.Sequential):
    """A convolution without bias, batch norm and an optional activation: ``conv``, ``bn``, ``act``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Kernel size (an int or an (h, w) pair).
        stride: Stride of the convolution.
        padding: Padding; ``None`` keeps the size at stride 1 ((k - 1) // 2 on each side).
        groups: Groups of the convolution (``in_channels`` for a depthwise convolution).
        act: The activation after BN (a name for ``create_act``, a module, ...); ``None``: none, and no
            ``act`` child.
        bn_eps: The batch norm epsilon (1e-3 in the TensorFlow-born networks).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        *,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        act: ActLike = "relu",
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        padding = _same_padding(kernel_size) if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps)
        if act is not None:
            self.act = create_act(act)


def init_weights(model: nn.Module, *, linear_std: float | None = None) -> None:
    """Initialises convolutions (He, fan-out), batch norms (1, 0) and linear layers of ``model``.

    Attention modules (those labelled ``SE_<stage>_<block>``) keep their own initialisation, so that a
    module behaves the same in every network.

    Args:
        model: The network.
        linear_std: Linear layers get N(0, linear_std^2) weights and zero biases (VGG: 0.01);
            ``None`` keeps PyTorch's default for them.
    """
    if any(p.is_meta for p in model.parameters()):
        return  # nothing to draw on the meta device (and torch's meta normal_ imports its compiler)
    skip: set[int] = set()
    for m in model.modules():
        if hasattr(m, ATTENTION_LABEL):
            skip.update(id(sub) for sub in m.modules())
    for m in model.modules():
        if id(m) in skip:
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth (Huang et al. 2016, arXiv:1603.09382): drops whole residual branches per sample.

    Args:
        x: The residual branch's output (N, C, H, W).
        rate: The probability of dropping a sample's branch.
        training: Only active in training mode.

    Returns:
        ``x`` with each sample's branch zeroed with probability ``rate`` and the rest scaled by
        ``1 / (1 - rate)``.
    """
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


def check_image_input(x: Tensor, network: str) -> None:
    """Raises a ``ValueError`` unless ``x`` is an image batch (N, C, H, W).

    Args:
        x: The input.
        network: The network's name, for the message.
    """
    if x.dim() != 4:
        raise ValueError(f"{network} expects an (N, C, H, W) input, got shape {list(x.shape)}")


def inverted_residual_plan(model: nn.Module) -> list[tuple[str, int | None, int]]:
    """The ``feature_plan`` of a network of inverted-residual stages (MobileNetV3, EfficientNet): ``stem``,
    then ``stages.<s>.<b>`` blocks (``conv_dw`` carries the stride, ``conv_pwl`` the output channels),
    then the last 1x1 convolution ``stages.<n>``; as (module, output channels, stride) steps."""
    stride = 2
    steps: list[tuple[str, int | None, int]] = [("stem", model.stem.conv.out_channels, stride)]
    for s in range(len(model.config.stages)):
        for b, block in enumerate(model.stages[s]):
            stride *= block.conv_dw.conv.stride[0]
            steps.append((f"stages.{s}.{b}", block.conv_pwl.conv.out_channels, stride))
    return steps + [(f"stages.{len(model.config.stages)}", model.num_features, stride)]

"""Effective Squeeze-and-Excitation (eSE).

Lee, Park, "CenterMask: Real-Time Anchor-Free Instance Segmentation", CVPR 2020 (arXiv:1911.06667),
Eq. 1-2 (the attention of VoVNetV2):

    F_avg    = 1/(H*W) * sum_ij X_ij                  squeeze, (N, C)
    A_eSE    = sigma(W_C(F_avg))                      one FC layer, W_C: (C x C), with bias
    X_refine = A_eSE * X                              scale

SE's two FC layers with the bottleneck C/r lose channel information; eSE keeps one C x C layer and
no reduction. sigma is the hard sigmoid relu6(x + 3) / 6.
"""

from torch import Tensor, nn
from torch.nn import functional as F

from .common import check_channels, check_dims, check_input, conv_nd
from .create_act import ActLike, create_gate
from .registry import register_attention


@register_attention("ese")
class EffectiveSqueezeExcite(nn.Module):
    """Effective Squeeze-and-Excitation (Lee & Park 2020, arXiv:1911.06667).

    Input and output have the same shape (N, C, *spatial); the output is the input scaled channel by
    channel by A = sigma(W_C z + b), z the spatial mean.

    Args:
        channels: C, the number of input channels.
        gate: sigma: 'hard_sigmoid' (the paper), 'sigmoid', ... or a module/callable.
        bias: Whether ``fc`` (W_C) has a bias (the paper's and VoVNetV2's layer has one).
        dims: Spatial dimensions: 1 for (N, C, L), 2 for (N, C, H, W), 3 for (N, C, D, H, W).

    Raises:
        ValueError: On an invalid argument, and in ``forward`` on an input whose number of channels or
            dimensions does not match.
    """

    spatial: list[int]

    def __init__(self, channels: int, *, gate: ActLike = "hard_sigmoid", bias: bool = True, dims: int = 2) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        self.dims = check_dims(dims, method="EffectiveSqueezeExcite")
        self.spatial = list(range(2, dims + 2))
        # A 1x1 convolution, as in VoVNetV2's released models, applied as a matrix product below.
        self.fc = conv_nd(dims)(channels, channels, 1, bias=bias)  # W_C
        self.gate = create_gate(gate)

    def excite(self, x: Tensor) -> Tensor:
        """Computes the gate A for ``x``: (N, C, *spatial) -> (N, C)."""
        check_input(x, self.channels, self.dims, "EffectiveSqueezeExcite")
        z = x.mean(self.spatial)  # F_avg, (N, C)
        return self.gate(F.linear(z, self.fc.weight.flatten(1), self.fc.bias))

    def forward(self, x: Tensor) -> Tensor:
        a = self.excite(x)
        return x * a.view([a.shape[0], a.shape[1]] + [1] * self.dims)  # (N, C, 1, ...)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, dims={self.dims}"

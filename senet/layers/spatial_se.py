"""Spatial squeeze and channel excitation (sSE).

Roy, Navab, Wachinger, "Concurrent Spatial and Channel 'Squeeze & Excitation' in Fully Convolutional
Networks", MICCAI 2018 (arXiv:1803.02579), Section 2.2:

    q      = sigma(W_sq * U)          a 1x1 convolution C -> 1, q: one value per position
    U_sSE  = q * U                    every channel scaled by the same spatial map

SE squeezes space and excites channels; sSE does the opposite: it squeezes channels into one
projection per position and excites space, which suits dense prediction (segmentation).
"""

from torch import Tensor, nn

from .common import check_channels, check_dims, check_input, conv_nd
from .create_act import ActLike, create_gate
from .registry import register_attention


@register_attention("sse")
class SpatialSqueezeExcite(nn.Module):
    """Spatial squeeze, channel excitation (Roy et al. 2018, arXiv:1803.02579).

    Input and output have the same shape (N, C, *spatial); every position is scaled by
    q = sigma(W_sq . u + b), the same factor for all channels.

    Args:
        channels: C, the number of input channels.
        gate: sigma: 'sigmoid' (the paper), 'hard_sigmoid', ... or a module/callable.
        dims: Spatial dimensions: 1 for (N, C, L), 2 for (N, C, H, W), 3 for (N, C, D, H, W).

    Raises:
        ValueError: On an invalid argument, and in ``forward`` on an input whose number of channels or
            dimensions does not match.
    """

    def __init__(self, channels: int, *, gate: ActLike = "sigmoid", dims: int = 2) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        self.dims = check_dims(dims, method="SpatialSqueezeExcite")
        self.conv = conv_nd(dims)(channels, 1, 1, bias=True)  # W_sq (1 x C) and its bias
        self.gate = create_gate(gate)

    def excite(self, x: Tensor) -> Tensor:
        """Computes the spatial gate q for ``x``: (N, C, *spatial) -> (N, 1, *spatial)."""
        check_input(x, self.channels, self.dims, "SpatialSqueezeExcite")
        return self.gate(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.excite(x)  # (N, C, *spatial) * (N, 1, *spatial)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, dims={self.dims}"

"""Concurrent spatial and channel squeeze and excitation (scSE).

Roy, Navab, Wachinger, "Concurrent Spatial and Channel 'Squeeze & Excitation' in Fully Convolutional
Networks", MICCAI 2018 (arXiv:1803.02579), Section 2.3: the channel SE (cSE, the SE block of
Hu et al.) and the spatial SE (sSE) see the same input, and their outputs are combined:

    U_cSE  = s * U,   s = sigma(W1 delta(W2 z))       one factor per channel, (N, C)
    U_sSE  = q * U,   q = sigma(W_sq * U)             one factor per position, (N, 1, *spatial)
    U_scSE = U_cSE + U_sSE                            the paper's aggregation

Public implementations disagree on the aggregation: the MICCAI paper adds, the authors' later
journal version (Roy et al., IEEE TMI 2019, arXiv:1808.08127) and code take the element-wise
maximum ("max-out"), and others multiply. ``combine`` chooses; 'add' is the default, as in the paper.
"""

import torch
from torch import Tensor, nn

from .common import check_channels, check_dims
from .registry import register_attention
from .spatial_se import SpatialSqueezeExcite
from .squeeze_excite import SqueezeExcite

_COMBINES = ("add", "max", "mul")


@register_attention("scse")
class ChannelSpatialSqueezeExcite(nn.Module):
    """Concurrent spatial and channel squeeze and excitation (Roy et al. 2018, arXiv:1803.02579).

    Input and output have the same shape (N, C, *spatial).

    Args:
        channels: C, the number of input channels.
        reduction: r of the channel SE; its hidden width is C // r. The paper uses C/2 (r = 2, also the
            authors' code default); the SE paper's r = 16 is the common alternative.
        combine: How U_cSE = s * U and U_sSE = q * U are merged: 'add' (the paper: their sum),
            'max' (element-wise maximum, the authors' later choice) or 'mul' (U * s * q).
        dims: Spatial dimensions: 1 for (N, C, L), 2 for (N, C, H, W), 3 for (N, C, D, H, W).

    Raises:
        ValueError: On an invalid argument, and in ``forward`` on an input whose number of channels or
            dimensions does not match.
    """

    def __init__(self, channels: int, *, reduction: float = 2, combine: str = "add", dims: int = 2) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        self.dims = check_dims(dims, method="ChannelSpatialSqueezeExcite")
        if combine not in _COMBINES:
            raise ValueError(f"unknown combine {combine!r}; valid: {', '.join(_COMBINES)}")
        self.combine = combine
        self.cse = SqueezeExcite(channels, reduction, dims=dims)  # s, W1 and W2 of the paper
        self.sse = SpatialSqueezeExcite(channels, dims=dims)  # q, W_sq of the paper

    def forward(self, x: Tensor) -> Tensor:
        s = self.cse.excite(x)  # (N, C); checks the input
        s = s.view([s.shape[0], s.shape[1]] + [1] * self.dims)  # (N, C, 1, ...)
        q = self.sse.excite(x)  # (N, 1, *spatial)
        if self.combine == "add":
            return x * (s + q)  # s * U + q * U, one pass over U
        if self.combine == "max":
            return torch.maximum(x * s, x * q)
        return x * (s * q)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, combine={self.combine!r}, dims={self.dims}"


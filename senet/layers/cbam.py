"""Convolutional Block Attention Module (CBAM).

Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018 (arXiv:1807.06521),
Eq. 1-3, channel attention first, then spatial attention, applied in sequence:

    Mc(F)  = sigma(W1(W0(AvgPool(F))) + W1(W0(MaxPool(F))))      pools over space, (N, C)
    F'     = Mc(F) * F
    Ms(F') = sigma(f^{7x7}([AvgPool(F'); MaxPool(F')]))          pools over channels, (N, 1, H, W)
    F''    = Ms(F') * F'

W0 (C/r x C, followed by ReLU) and W1 (C x C/r) are shared by both pooled descriptors.

Choices where the paper's formulas and the authors' code differ, this module follows the formulas:

* No biases (``bias=False``): the formulas have none. The authors' code uses ``nn.Linear`` with
  biases in the MLP (so b1 enters Mc twice) and batch norm after f^{7x7}; ``bias=True`` puts biases
  on W0, W1 and f back, without the batch norm.
* The spatial descriptor is [mean; max] in this order, as in Eq. 3 (the authors' code stacks max
  first, which only permutes the two input channels of f).
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .common import check_channels, check_dims, check_input, conv_nd, hidden_width
from .create_act import ActLike, create_act, create_gate
from .registry import register_attention


@register_attention("cbam")
class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al. 2018, arXiv:1807.06521).

    Input and output have the same shape (N, C, *spatial): F'' = Ms(F') * F', F' = Mc(F) * F.

    Args:
        channels: C, the number of input channels.
        reduction: r; the hidden width of the shared MLP is C // r (never below 1). The paper uses 16.
        kernel_size: The size of the spatial convolution f (7 in the paper, 3 in its ablation); odd.
        activation: The nonlinearity after W0: 'relu' (the paper) or another name/module/callable.
        gate: sigma of both attentions: 'sigmoid' (the paper), ... or a module/callable.
        bias: Whether W0, W1 and f have biases; the paper's formulas have none (see the module notes).
        dims: Spatial dimensions: 1 for (N, C, L), 2 for (N, C, H, W), 3 for (N, C, D, H, W); f is a
            ``kernel_size``-wide convolution over all of them.

    Raises:
        ValueError: On an invalid argument, and in ``forward`` on an input whose number of channels or
            dimensions does not match.
    """

    spatial: list[int]

    def __init__(
        self,
        channels: int,
        *,
        reduction: float = 16,
        kernel_size: int = 7,
        activation: ActLike = "relu",
        gate: ActLike = "sigmoid",
        bias: bool = False,
        dims: int = 2,
    ) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        self.dims = check_dims(dims, method="CBAM")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size % 2 == 0 or kernel_size < 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        self.hidden = hidden_width(channels, reduction)
        self.kernel_size = kernel_size
        self.spatial = list(range(2, dims + 2))
        conv = conv_nd(dims)
        # The shared MLP, stored as 1x1 convolutions like SE's and applied as matrix products.
        self.fc1 = conv(channels, self.hidden, 1, bias=bias)  # W0
        self.act = create_act(activation)
        self.fc2 = conv(self.hidden, channels, 1, bias=bias)  # W1
        self.conv = conv(2, 1, kernel_size, padding=kernel_size // 2, bias=bias)  # f
        self.gate = create_gate(gate)

    def channel_attention(self, x: Tensor) -> Tensor:
        """Computes Mc for ``x``: (N, C, *spatial) -> (N, C)."""
        check_input(x, self.channels, self.dims, "CBAM")
        n = x.shape[0]
        # Both descriptors through the shared MLP as one batch: (2N, C).
        z = torch.cat([x.mean(self.spatial), x.amax(self.spatial)], 0)
        h = self.act(F.linear(z, self.fc1.weight.flatten(1), self.fc1.bias))  # (2N, C/r)
        a = F.linear(h, self.fc2.weight.flatten(1), self.fc2.bias)  # (2N, C)
        return self.gate(a[:n] + a[n:])

    def spatial_attention(self, x: Tensor) -> Tensor:
        """Computes Ms for ``x``: (N, C, *spatial) -> (N, 1, *spatial)."""
        d = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)  # (N, 2, *spatial)
        return self.gate(self.conv(d))

    def forward(self, x: Tensor) -> Tensor:
        mc = self.channel_attention(x)
        x = x * mc.view([mc.shape[0], mc.shape[1]] + [1] * self.dims)  # F', (N, C, *spatial)
        return x * self.spatial_attention(x)  # F''

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, kernel_size={self.kernel_size}, dims={self.dims}"

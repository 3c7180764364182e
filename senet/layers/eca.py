"""Efficient Channel Attention (ECA).

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020 (arXiv:1910.03151), Eq. 7-12:

    y     = 1/(H*W) * sum_ij X_ij                     squeeze, (N, C)
    omega = sigma(C1D_k(y))                           a 1D convolution over the channel axis, no bias
    k     = psi(C) = | log2(C)/gamma + b/gamma |_odd  the nearest odd number, gamma = 2, b = 1

SE's dimensionality reduction hurts and its full cross-channel mixing is not needed: ECA lets every
channel interact with its k neighbours only, with k shared weights, so the module has k parameters.
"""

import math

from torch import Tensor, nn

from .common import check_channels, check_dims, check_input
from .create_act import ActLike, create_gate
from .registry import register_attention


def eca_kernel_size(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """The paper's adaptive kernel size k = psi(C) = |log2(C)/gamma + beta/gamma|_odd (Eq. 12).

    |t|_odd is the odd number nearest to t; a tie (t even) goes up, as in the authors' code
    (``t = int(abs(...)); k = t if t % 2 else t + 1``). ResNet-50's 256, 512, 1024 and 2048 channels
    give k = 5, 5, 5 and 7.

    Args:
        channels: C.
        gamma: gamma of the paper (2).
        beta: b of the paper (1).

    Returns:
        The odd kernel size k >= 1.
    """
    t = int(abs(math.log2(channels) / gamma + beta / gamma))
    return t if t % 2 else t + 1


@register_attention("eca")
class EfficientChannelAttention(nn.Module):
    """Efficient Channel Attention (Wang et al. 2020, arXiv:1910.03151).

    Input and output have the same shape (N, C, *spatial); the output is the input scaled channel by
    channel by omega = sigma(C1D_k(y)), y the spatial mean.

    Args:
        channels: C, the number of input channels.
        kernel_size: k; ``None`` (default) takes the paper's adaptive k = psi(C). Must be odd, so that
            the zero-padded convolution keeps the C positions centred.
        gamma: gamma of psi (2 in the paper).
        beta: b of psi (1 in the paper).
        gate: sigma: 'sigmoid' (the paper), 'hard_sigmoid', ... or a module/callable.
        dims: Spatial dimensions: 1 for (N, C, L), 2 for (N, C, H, W), 3 for (N, C, D, H, W).

    Raises:
        ValueError: On an invalid argument, and in ``forward`` on an input whose number of channels or
            dimensions does not match.
    """

    spatial: list[int]

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int | None = None,
        gamma: float = 2,
        beta: float = 1,
        gate: ActLike = "sigmoid",
        dims: int = 2,
    ) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        self.dims = check_dims(dims, method="EfficientChannelAttention")
        if kernel_size is None:
            if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0 or math.isinf(gamma):
                raise ValueError(f"gamma must be a positive finite number, got {gamma!r}")
            if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta):
                raise ValueError(f"beta must be a finite number, got {beta!r}")
            if abs(math.log2(channels) / gamma + beta / gamma) > 2 * channels + 1:
                raise ValueError(
                    f"gamma={gamma!r}, beta={beta!r} give a kernel wider than 2C + 1 = {2 * channels + 1} "
                    f"for {channels} channels, whose outer taps would only see zero padding"
                )
            kernel_size = eca_kernel_size(channels, gamma, beta)
        elif isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size <= 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        elif kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (symmetric zero padding keeps C outputs), got {kernel_size}")
        self.kernel_size = kernel_size
        self.spatial = list(range(2, dims + 2))
        # C1D_k: one input and one output "channel"; the C channels are its length.
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.gate = create_gate(gate)

    def excite(self, x: Tensor) -> Tensor:
        """Computes the gate omega for ``x``: (N, C, *spatial) -> (N, C)."""
        check_input(x, self.channels, self.dims, "EfficientChannelAttention")
        y = x.mean(self.spatial).unsqueeze(1)  # (N, 1, C)
        return self.gate(self.conv(y)).squeeze(1)  # (N, C)

    def forward(self, x: Tensor) -> Tensor:
        w = self.excite(x)
        return x * w.view([w.shape[0], w.shape[1]] + [1] * self.dims)  # (N, C, 1, ...)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, dims={self.dims}"

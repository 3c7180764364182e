"""Coordinate attention.

Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021
(arXiv:2103.02907), Eq. 4-9:

    z^h_c(h) = 1/W * sum_i x_c(h, i),   z^w_c(w) = 1/H * sum_j x_c(j, w)    directional pooling
    f        = delta(F1([z^h, z^w]))        shared 1x1 conv C -> C/r on the concatenation, (N, C/r, H + W)
    f^h, f^w = split(f)                     (N, C/r, H) and (N, C/r, W)
    g^h      = sigma(F_h(f^h)),  g^w = sigma(F_w(f^w))                      1x1 convs C/r -> C
    y_c(i, j) = x_c(i, j) * g^h_c(i) * g^w_c(j)

Unlike SE, the gates keep one coordinate each, so the attention knows *where* along each axis.
"""

import torch
from torch import Tensor, nn

from .common import batch_norm_nd, check_channels, check_dims, check_input, conv_nd, hidden_width
from .create_act import ActLike, create_act, create_gate
from .registry import register_attention


@register_attention("coord")
class CoordAttention(nn.Module):
    """Coordinate attention (Hou et al. 2021, arXiv:2103.02907).

    Input and output have the same shape (N, C, *spatial). The layout follows the authors' code
    (``conv1``, ``bn1``, ``conv_h``, ``conv_w``, all convolutions with biases), so their weights load.

    Args map to the paper: ``conv1`` is F1, ``bn1`` followed by ``activation`` is delta, ``conv_h`` and
    ``conv_w`` are F_h and F_w, ``gate`` is sigma, ``reduction`` is r.

    Dimensions: the method needs at least two spatial axes (with one, the "directional" profile is
    the input itself and nothing is pooled), so ``dims=1`` is refused. For ``dims=3`` (N, C, D, H, W)
    the natural generalisation is used: one profile per axis (each the mean over the two other
    axes), all three concatenated through the shared F1 and batch norm, and a third gate F_d
    (``conv_d``): y = x * g^d * g^h * g^w.

    Batch norm: in training mode its statistics are taken over N * (H + W) positions, so batch size
    1 works, even at 1x1 (two positions). But at N = 1 and H = W = 1 both profiles equal x, the
    variance is 0 and the normalised f is the batch norm's bias alone: the gate then ignores the
    input. That is the method's behaviour, kept as is; run single samples in eval mode (running
    statistics).

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r; the hidden width is mip = max(8, C // r), the floor of 8 from the authors'
            code. The paper uses 32.
        activation: The nonlinearity of delta after the batch norm: 'hard_swish' (the paper) or
            another name/module/callable.
        gate: sigma: 'sigmoid' (the paper), ... or a module/callable.
        dims: Spatial dimensions: 2 for (N, C, H, W), 3 for (N, C, D, H, W).

    Raises:
        ValueError: On an invalid argument (``dims=1`` among them), and in ``forward`` on an input
            whose number of channels or dimensions does not match.
    """

    pool_dims: list[list[int]]

    def __init__(
        self,
        channels: int,
        *,
        reduction: float = 32,
        activation: ActLike = "hard_swish",
        gate: ActLike = "sigmoid",
        dims: int = 2,
    ) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        if dims == 1:
            raise ValueError(
                "CoordAttention needs at least 2 spatial dims (it pools along one axis at a time, and "
                "with one axis there is nothing to pool); use dims=2 or 3, or an SE-style module for dims=1"
            )
        self.dims = check_dims(dims, supported=(2, 3), method="CoordAttention")
        self.hidden = hidden_width(channels, reduction, minimum=8)  # mip
        # Profile a is the mean over every spatial axis but a: (N, C, S_a).
        self.pool_dims = [[2 + b for b in range(dims) if b != a] for a in range(dims)]
        conv = conv_nd(dims)
        self.conv1 = conv(channels, self.hidden, 1)  # F1
        self.bn1 = batch_norm_nd(dims)(self.hidden)
        self.act = create_act(activation)
        self.conv_d = conv(self.hidden, channels, 1) if dims == 3 else None  # F_d
        self.conv_h = conv(self.hidden, channels, 1)  # F_h
        self.conv_w = conv(self.hidden, channels, 1)  # F_w
        self.gate = create_gate(gate)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.channels, self.dims, "CoordAttention")
        n, c = x.shape[0], x.shape[1]
        sizes: list[int] = x.shape[2:]  # [H, W] or [D, H, W]
        profiles = [x.mean(other) for other in self.pool_dims]  # z^d, z^h, z^w: (N, C, S_a)
        # Concatenated along one axis, trailing singletons for the (dims)-D 1x1 convolutions and batch
        # norm: (N, C, D + H + W, 1, ...), as in the authors' code.
        z = torch.cat(profiles, 2)
        z = z.reshape([n, c, z.shape[2]] + [1] * (self.dims - 1))  # not -1: an empty batch has no size to infer
        f = self.act(self.bn1(self.conv1(z)))  # (N, mip, D + H + W, 1, ...)
        parts = torch.split(f, sizes, 2)  # f^d, f^h, f^w
        g_w = self.gate(self.conv_w(parts[-1]))  # (N, C, W, 1, ...)
        g_h = self.gate(self.conv_h(parts[-2]))  # (N, C, H, 1, ...)
        out = x * self._along(g_w, self.dims - 1) * self._along(g_h, self.dims - 2)
        if self.conv_d is not None:
            out = out * self.gate(self.conv_d(parts[0]))  # g^d: (N, C, D, 1, 1) is already in place
        return out

    def _along(self, g: Tensor, axis: int) -> Tensor:
        # (N, C, S, 1, ...) -> (N, C, 1, .., S, .., 1): S moved to spatial axis ``axis`` to broadcast.
        shape = [g.shape[0], g.shape[1]] + [1] * self.dims
        shape[2 + axis] = g.shape[2]
        return g.reshape(shape)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, dims={self.dims}"

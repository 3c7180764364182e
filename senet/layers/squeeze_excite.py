"""The Squeeze-and-Excitation block.

Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507):

    z_c = 1/(H*W) * sum_ij u_c(i, j)                  squeeze (Eq. 2)
    s   = sigma(W2 * delta(W1 * z + b1) + b2)          excitation (Eq. 3), W1: (C/r x C), W2: (C x C/r)
    y_c = s_c * u_c                                    scale (Eq. 4)

Arguments map to the paper's symbols: ``channels`` is C, ``reduction`` is r, ``fc1`` holds W1 and b1,
``fc2`` holds W2 and b2, ``activation`` is delta (ReLU) and ``gate`` is sigma (sigmoid).

``fc1`` and ``fc2`` are stored as 1x1 convolutions, the layout of the authors' released models and of
the public checkpoints, so those load as they are. The default forward path treats them as one matrix
product each on the pooled (N, C) matrix, which is the same math at a fraction of the overhead of
convolutions on (N, C, 1, 1) tensors; ``fast=False`` runs the textbook module (adaptive pooling, 1x1
convolutions, multiply) instead, kept as the reference.
"""



import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .common import check_channels, check_dims, check_input, conv_nd, hidden_width, make_divisible
from .create_act import ActLike, create_act, create_gate
from .registry import register_attention

_SQUEEZES = ("avg", "max", "avgmax")


def squeeze(x: Tensor, mode: str, spatial: list[int]) -> Tensor:
    """Pools every channel of ``x`` over its spatial dimensions: (N, C, *spatial) -> (N, C).

    Args:
        x: The input, with channels on dimension 1.
        mode: 'avg' (the paper), 'max', or 'avgmax' (the sum of both).
        spatial: The spatial dimensions to reduce, e.g. ``[2, 3]`` for images.

    Returns:
        The per-channel descriptor z, shape (N, C).
    """
    if mode == "avg":
        return x.mean(spatial)
    if mode == "max":
        return x.amax(spatial)
    return x.mean(spatial) + x.amax(spatial)


def spatial_size(x: Tensor, spatial: list[int]) -> int:
    """The number of positions H*W (or L, or D*H*W) of ``x`` over its ``spatial`` dimensions."""
    area = 1
    for d in spatial:
        area *= x.shape[d]
    return area


@register_attention("se")
class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation block (Hu et al. 2018, arXiv:1709.01507).

    Input and output have the same shape (N, C, *spatial); the output is the input scaled channel by
    channel by the gate s = sigma(W2 delta(W1 z + b1) + b2).

    Args:
        channels: C, the number of input channels.
        reduction: r; the hidden width is C // r (never below 1). The paper uses 16.
        hidden: Sets the hidden width directly (overrides ``reduction``).
        divisor: Rounds the hidden width to a multiple of ``divisor`` (8 is the later library
            convention); 1, the default, keeps the paper's C // r.
        squeeze: 'avg' (the paper), 'max' or 'avgmax'.
        gate: sigma: 'sigmoid' (the paper), 'hard_sigmoid', 'tanh', 'relu', or a module/callable.
        activation: delta: 'relu' (the paper), 'silu', ... or a module/callable.
        bias: Whether ``fc1`` and ``fc2`` have biases (the released models have them).
        dims: Spatial dimensions: 1 for (N, C, L), 2 for (N, C, H, W), 3 for (N, C, D, H, W).
        fast: Use the matrix-product path (default) instead of the textbook module; both compute the
            same function.
        record_gate: Keep the gate of the last forward pass in ``last_gate`` (shape (N, C), detached)
            for analysis. Off by default; when off nothing is stored.

    Raises:
        ValueError: On an invalid argument, and in ``forward`` on an input whose number of channels or
            dimensions does not match.
    """

    last_gate: Tensor | None
    spatial: list[int]

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        *,
        hidden: int | None = None,
        divisor: int = 1,
        squeeze: str = "avg",
        gate: ActLike = "sigmoid",
        activation: ActLike = "relu",
        bias: bool = True,
        dims: int = 2,
        fast: bool = True,
        record_gate: bool = False,
    ) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        self.dims = check_dims(dims, method="SqueezeExcite")
        if hidden is None:
            hidden = hidden_width(channels, reduction)
        elif isinstance(hidden, bool) or not isinstance(hidden, int) or hidden <= 0:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor <= 0:
            raise ValueError(f"divisor must be a positive integer, got {divisor!r}")
        if divisor > 1:
            hidden = make_divisible(hidden, divisor)
        if squeeze not in _SQUEEZES:
            raise ValueError(f"unknown squeeze {squeeze!r}; valid: {', '.join(_SQUEEZES)}")
        self.hidden = hidden
        self.reduction = reduction
        self.squeeze_mode = squeeze
        self.spatial = list(range(2, dims + 2))
        conv = conv_nd(dims)
        self.fc1 = conv(channels, hidden, 1, bias=bias)  # W1, b1
        self.act = create_act(activation)
        self.fc2 = conv(hidden, channels, 1, bias=bias)  # W2, b2
        self.gate = create_gate(gate)
        self.fast = fast
        self.record_gate = record_gate
        self.last_gate = None

    def excite(self, x: Tensor) -> Tensor:
        """Computes the gate s for ``x``: (N, C, *spatial) -> (N, C).

        Blocks that fuse the scale into another operation (e.g. ``torch.addcmul`` with the residual)
        call this and apply s themselves.
        """
        check_input(x, self.channels, self.dims, "SqueezeExcite")
        if torch.jit.is_tracing():  # export (ONNX, TorchScript): the module's export form, see ``forward``
            return self._excite_reference(x).flatten(1)
        if self.squeeze_mode == "avg" and x.dtype != torch.float16:
            # W1 z = (1/HW) W1 sum(u): the averaging folds into the GEMM's alpha (one pass fewer). Float16
            # takes the mean instead: its sum over H*W overflows (65504) where the mean does not.
            s = self.excite_sum(x.sum(self.spatial), spatial_size(x, self.spatial))
        else:
            z = squeeze(x, self.squeeze_mode, self.spatial)
            h = self.act(F.linear(z, self.fc1.weight.flatten(1), self.fc1.bias))  # (N, C/r)
            s = self.gate(F.linear(h, self.fc2.weight.flatten(1), self.fc2.bias))  # (N, C)
        if self.record_gate:
            self.last_gate = s.detach()
        return s

    def excite_sum(self, total: Tensor, area: int) -> Tensor:
        """The gate s from the per-channel sums of U (N, C) over ``area`` positions (squeeze 'avg').

        1x1-conv weights (out, in, 1, ...) are viewed as matrices: a free view, one GEMM each.
        """
        w1, w2 = self.fc1.weight.flatten(1), self.fc2.weight.flatten(1)
        return self.excite_sum_with(total, area, w1, self.fc1.bias, w2, self.fc2.bias)

    def excite_sum_with(
        self, total: Tensor, area: int, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None
    ) -> Tensor:
        """``excite_sum`` with the given W1 (C/r, C), b1, W2 (C, C/r), b2 instead of the module's own."""
        return self.gate(F.linear(self.hidden_with(total, area, w1, b1), w2, b2))  # (N, C)

    def hidden_with(self, total: Tensor, area: int, w1: Tensor, b1: Tensor | None) -> Tensor:
        """The bottleneck's activations delta(W1 z + b1), z = ``total`` / ``area`` (N, C/r), with the given W1, b1;
        the 1/area of the mean is folded into the GEMM's alpha."""
        scale = 1.0 / max(area, 1)
        h = torch.mm(total, w1.t()) * scale if b1 is None else torch.addmm(b1, total, w1.t(), alpha=scale)
        return self.act(h)

    def _excite_reference(self, x: Tensor) -> Tensor:
        # The textbook gate: pooling to (N, C, 1, ...), then 1x1 convolutions; (N, C, 1, ...).
        check_input(x, self.channels, self.dims, "SqueezeExcite")
        z = squeeze(x, self.squeeze_mode, self.spatial)
        z = z.view([z.shape[0], z.shape[1]] + [1] * self.dims)  # (N, C, 1, ...)
        s = self.gate(self.fc2(self.act(self.fc1(z))))
        if self.record_gate:
            self.last_gate = s.flatten(1).detach()
        return s

    def _forward_reference(self, x: Tensor) -> Tensor:
        # The textbook module: pooling to (N, C, 1, ...), 1x1 convolutions, broadcast multiply.
        return x * self._excite_reference(x)

    def forward(self, x: Tensor) -> Tensor:
        # The export form is the textbook module: traced (ONNX and TorchScript export), the fast path's
        # sum with 1/(H*W) folded into a GEMM's alpha would bake the trace's H*W into the file (and the ONNX
        # exporter refuses a non-constant alpha); a mean over H, W and 1x1 convolutions are standard ops
        # that leave H and W free. ``excite`` (called by the fused residual blocks and scSE) does the same.
        if not self.fast or torch.jit.is_tracing():
            return self._forward_reference(x)
        s = self.excite(x)
        return x * s.view([s.shape[0], s.shape[1]] + [1] * self.dims)  # (N, C, 1, ...)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, hidden={self.hidden}, squeeze={self.squeeze_mode!r}, "
            f"dims={self.dims}, fast={self.fast}"
        )

"""Which ``torch.nn`` layers retrofit recognises, and what it reads from them."""

from __future__ import annotations

from torch import nn

from ..models.base import ATTENTION_LABEL

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardtanh, nn.Tanh, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus,
)  # fmt: skip
# f(2a) = 2 f(a): a factor 2 passes through them exactly (see ``to_paper_gate``).
HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.PReLU)
# Layers whose output is their input up to a per-sample or per-channel factor (in eval mode).
TRANSPARENT = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.LPPool2d)


def channels_out(module: nn.Module) -> int | None:
    """The channels of a convolution's or a norm's output (``None`` for anything else)."""
    if isinstance(module, CONVS):
        return module.out_channels
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if isinstance(module, NORMS):
        return module.num_features
    return None


def channels_in(module: nn.Module) -> int | None:
    """The channels of a convolution's or a norm's input (``None`` for anything else)."""
    return module.in_channels if isinstance(module, CONVS) else channels_out(module)


def spatial_dims(module: nn.Module) -> int:
    """1, 2 or 3: the spatial dimensions of a convolution (2 for anything else)."""
    for dims, cls in enumerate(CONVS, start=1):
        if isinstance(module, cls):
            return dims
    return 2


def downsamples(module: nn.Module) -> bool:
    """Whether ``module`` reduces the resolution: a strided convolution or pooling."""
    if not isinstance(module, CONVS + POOLS):
        return False
    stride = module.stride if module.stride is not None else module.kernel_size  # a pooling's default
    return any(s > 1 for s in ((stride,) if isinstance(stride, int) else stride))


def folds_exactly(module: nn.Module) -> bool:
    """Whether doubling ``module``'s weight and bias doubles its output exactly (``to_paper_gate``'s fold).

    True for convolutions, ``Linear`` and affine norms, including a norm subclass that applies its own
    activation (timm's ``BatchNormAct2d``) when every layer inside it is transparent or positively
    homogeneous (ReLU: relu(2a) = 2 relu(a)); not after SiLU or GELU.
    """
    if not isinstance(module, CONVS + NORMS + (nn.Linear, nn.LayerNorm)) or getattr(module, "weight", None) is None:
        return False
    return all(isinstance(m, TRANSPARENT + HOMOGENEOUS) for m in _layers_inside(module))


def applies_activation(module: nn.Module) -> bool:
    """Whether a norm layer applies an activation itself (timm's ``BatchNormAct2d`` with ``apply_act``)."""
    return isinstance(module, NORMS) and any(isinstance(m, ACTIVATIONS) for m in _layers_inside(module))


def _layers_inside(module: nn.Module) -> list[nn.Module]:
    """The layers inside ``module``, not counting attention modules retrofitted onto it (``bn.se``)."""
    inside = []
    for child in module.children():
        if not hasattr(child, ATTENTION_LABEL):
            inside += [child, *_layers_inside(child)]
    return inside


def is_3x3(module: nn.Module) -> bool:
    """Whether ``module`` is a convolution with a 3 x 3 (x 3) kernel."""
    return isinstance(module, CONVS) and all(k == 3 for k in module.kernel_size)

"""senet: Squeeze-and-Excitation networks in PyTorch.

    >>> import torch, senet
    >>> se = senet.SqueezeExcite(256, reduction=16)       # Hu et al. 2018, r = 16
    >>> se(torch.randn(2, 256, 14, 14)).shape
    torch.Size([2, 256, 14, 14])
    >>> model = senet.create_model("se_resnet50")          # or "resnet50", attention="eca", ...
    >>> round(senet.profile(model).macs / 1e9, 2)          # multiply-adds at 224 px
    3.87
"""

from .layers import (
    CBAM,
    ChannelSpatialSqueezeExcite,
    CoordAttention,
    EffectiveSqueezeExcite,
    EfficientChannelAttention,
    SpatialSqueezeExcite,
    SqueezeExcite,
    create_attention,
    list_attention,
    register_attention,
)
from .models import create_model, list_models, register_model
from .profiler import profile

__version__ = "0.1.0"

__all__ = [
    "CBAM",
    "ChannelSpatialSqueezeExcite",
    "CoordAttention",
    "EffectiveSqueezeExcite",
    "EfficientChannelAttention",
    "SpatialSqueezeExcite",
    "SqueezeExcite",
    "__version__",
    "create_attention",
    "create_model",
    "list_attention",
    "list_models",
    "profile",
    "register_attention",
    "register_model",
]

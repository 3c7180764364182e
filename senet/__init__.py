"""senet: Squeeze-and-Excitation networks in PyTorch.

    >>> import torch, senet
    >>> se = senet.SqueezeExcite(256, reduction=16)
    >>> se(torch.randn(2, 256, 14, 14)).shape
    torch.Size([2, 256, 14, 14])
"""

from .layers import SqueezeExcite, create_attention, list_attention, register_attention

__version__ = "0.1.0"

__all__ = [
    "SqueezeExcite",
    "__version__",
    "create_attention",
    "list_attention",
    "register_attention",
]

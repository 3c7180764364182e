"""senet: Squeeze-and-Excitation networks in PyTorch.

    >>> import torch, senet
    >>> se = senet.SqueezeExcite(256, reduction=16)       # Hu et al. 2018, r = 16
    >>> se(torch.randn(2, 256, 14, 14)).shape
    torch.Size([2, 256, 14, 14])
    >>> model = senet.create_model("se_resnet50")          # or "resnet50", attention="eca", ...
    >>> round(senet.profile(model).macs / 1e9, 2)          # multiply-adds at 224 px
    3.87

The names below are imported on first use, so that ``import senet.cli.main`` (and ``senet --help``)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "CBAM": "senet.layers",
    "ChannelSpatialSqueezeExcite": "senet.layers",
    "CoordAttention": "senet.layers",
    "EffectiveSqueezeExcite": "senet.layers",
    "EfficientChannelAttention": "senet.layers",
    "SpatialSqueezeExcite": "senet.layers",
    "SqueezeExcite": "senet.layers",
    "create_attention": "senet.layers",
    "list_attention": "senet.layers",
    "register_attention": "senet.layers",
    "convert_state_dict": "senet.convert",
    "list_namings": "senet.convert",
    "data_config": "senet.pretrained",
    "list_pretrained": "senet.pretrained",
    "load_pretrained": "senet.pretrained",
    "create_model": "senet.factory",
    "load_model": "senet.factory",
    "list_models": "senet.models",
    "register_model": "senet.models",
    "profile": "senet.profiler",
}

# Subpackages reachable as attributes without an import of their own (``senet.models.create_model``).
# ``retrofit`` is a callable package: ``senet.retrofit(model)`` calls ``senet.retrofit.retrofit``.
_SUBPACKAGES = (
    "analysis", "bench", "cli", "convert", "data", "export", "factory", "io", "layers", "models", "pretrained",
    "profiler", "retrofit",
    "train", "utils",
)  # fmt: skip

__all__ = [
    "CBAM",
    "ChannelSpatialSqueezeExcite",
    "CoordAttention",
    "EffectiveSqueezeExcite",
    "EfficientChannelAttention",
    "SpatialSqueezeExcite",
    "SqueezeExcite",
    "__version__",
    "convert_state_dict",
    "create_attention",
    "create_model",
    "data_config",
    "list_attention",
    "list_models",
    "list_namings",
    "list_pretrained",
    "load_model",
    "load_pretrained",
    "profile",
    "register_attention",
    "register_model",
    "retrofit",
]

if TYPE_CHECKING:
    from .convert import convert_state_dict, list_namings
    from .factory import create_model, load_model
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
    from .models import list_models, register_model
    from .pretrained import data_config, list_pretrained, load_pretrained
    from .profiler import profile
    from .retrofit import retrofit


def __getattr__(name: str) -> Any:
    """Imports a public name (``senet.SqueezeExcite``, ...) or a subpackage on first use, and caches it."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"senet.{name}")  # the import binds it in the package
    if name not in _LAZY:
        raise AttributeError(f"module 'senet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))

"""Attention modules: the SE block and its variants, behind one registry.

Importing this package registers every module: 'se', 'sse', 'scse', 'ese', 'eca', 'cbam', 'coord'.
"""

from .cbam import CBAM
from .common import make_divisible
from .coord import CoordAttention
from .create_act import create_act, create_gate, list_activations, list_gates
from .eca import EfficientChannelAttention, eca_kernel_size
from .effective_se import EffectiveSqueezeExcite
from .registry import create_attention, get_attention, list_attention, register_attention
from .scse import ChannelSpatialSqueezeExcite
from .spatial_se import SpatialSqueezeExcite
from .squeeze_excite import SqueezeExcite

__all__ = [
    "CBAM",
    "ChannelSpatialSqueezeExcite",
    "CoordAttention",
    "EffectiveSqueezeExcite",
    "EfficientChannelAttention",
    "SpatialSqueezeExcite",
    "SqueezeExcite",
    "create_act",
    "create_attention",
    "create_gate",
    "eca_kernel_size",
    "get_attention",
    "list_activations",
    "list_attention",
    "list_gates",
    "make_divisible",
    "register_attention",
]

"""Attention modules: the SE block and its variants, behind one registry."""

from .common import make_divisible
from .create_act import create_act, create_gate, list_activations, list_gates
from .registry import create_attention, get_attention, list_attention, register_attention
from .squeeze_excite import SqueezeExcite

__all__ = [
    "SqueezeExcite",
    "create_act",
    "create_attention",
    "create_gate",
    "get_attention",
    "list_activations",
    "list_attention",
    "list_gates",
    "make_divisible",
    "register_attention",
]

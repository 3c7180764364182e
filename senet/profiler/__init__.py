"""Profiling: parameters, multiply-adds and activation memory per module, and the SE blocks' share.

>>> import senet
>>> from senet.profiler import profile
>>> report = profile(senet.SqueezeExcite(64), input_size=(64, 56, 56))
>>> report.macs  # pooling 64*56*56 + fc1 64*4 + fc2 4*64 + scaling 64*56*56
401920
"""

from .counter import attention_classes, is_attention_module, profile
from .report import Cost, LayerProfile, ProfileReport

__all__ = [
    "Cost",
    "LayerProfile",
    "ProfileReport",
    "attention_classes",
    "is_attention_module",
    "profile",
]

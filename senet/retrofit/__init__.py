"""Retrofitting attention into existing CNNs: ``senet.retrofit(model)``.

    >>> import senet
    >>> model, report = senet.retrofit(senet.create_model("resnet50"))   # SE in all 16 blocks
    >>> len(report.inserted), report.params_added
    (16, 2530992)

``senet.retrofit`` is this package, made callable (``senet.retrofit(...)`` calls ``retrofit``), so that
``import senet.retrofit`` and ``senet.retrofit(model)`` both work, in either order.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import attention_modules, attention_paths, retrofit
from .gate import DoubledGate
from .paper_gate import to_paper_gate
from .report import InsertedAttention, RetrofitReport

__all__ = [
    "DoubledGate",
    "InsertedAttention",
    "RetrofitReport",
    "attention_modules",
    "attention_paths",
    "retrofit",
    "to_paper_gate",
]


class _CallablePackage(types.ModuleType):
    """This package, callable as ``retrofit`` (``senet.retrofit`` names both)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return retrofit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

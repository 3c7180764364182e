"""The pretrained table's data: every public checkpoint, ImageNet-1k first, then CIFAR-10.

One module per data set; ``senet.pretrained.table`` looks the entries up.
"""

from __future__ import annotations

from ..schema import PretrainedWeights
from .cifar10 import CIFAR10
from .imagenet import IMAGENET

PRETRAINED: tuple[PretrainedWeights, ...] = IMAGENET + CIFAR10

__all__ = ["CIFAR10", "IMAGENET", "PRETRAINED"]

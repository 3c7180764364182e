"""The registry as test parameters: every model, the huge ones in the slow tier; and zero-weight models for
the sweeps that check shapes only.

ResNet-1202 (19.4M parameters, 1,202 layers) takes 10-15 s per sweep test on 2 cores where the others
take well under one. The 101- and 152-layer ImageNet ResNets and ResNeXts and SENet-154 take 1-3 s each
per sweep test (25 s over the default tier's sweeps); they are the 50-layer networks' code with more blocks
per stage (SENet-154: SE-ResNeXt with its 64x4d groups and three-convolution stem, options that the
sweeps' other members and test_convert_equivalence.py's check of SENet-154 against its publisher's network
keep in the default tier). ``make test-all`` (and CI) still sweeps them all.
"""

import itertools

import pytest
import torch
from torch import nn

from senet.models import create_model, list_models
from senet.utils.skeleton import meta_skeleton

HUGE = frozenset({"cifar_resnet1202", "se_cifar_resnet1202", "senet154", "resnet101", "se_resnet101", "resnet152",
                  "se_resnet152", "resnext101_32x4d", "se_resnext101_32x4d"})  # fmt: skip


def models(names=None):
    """``names`` (default: every registered model) as pytest parameters, the HUGE ones marked slow."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in HUGE else n for n in (names or list_models())]


def zero_model(name: str, **options) -> nn.Module:
    """``create_model(name, **options)`` with every parameter and buffer zero, for tests of shapes alone.

    Built on the meta device (no initialisation drawn), then given zeroed CPU memory (``zeroed``).
    """
    with meta_skeleton():
        model = create_model(name, **options)
    return zeroed(model)


def zeroed(model: nn.Module) -> nn.Module:
    """A model built on the meta device, given zeroed CPU memory (in place). A forward pass of real zeros at a
    small input costs less than the same pass on the meta device, whose shape rules run in Python (measured on
    2 busy cores, ten networks from CIFAR ResNet-20 to SENet-154 at 32 px: 32 s on the meta device, 15 s here).
    """
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            tensor.zero_()
    return model


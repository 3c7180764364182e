"""The registry as test parameters: every model, the huge ones in the slow tier.

ResNet-1202 (19.4M parameters, 1,202 layers) takes 10-15 s per sweep test on 2 cores where the others
take well under one; ``make test-all`` (and CI) still sweeps it.
"""

import pytest

from senet.models import list_models

HUGE = frozenset({"cifar_resnet1202", "se_cifar_resnet1202"})


def models(names=None):
    """``names`` (default: every registered model) as pytest parameters, the HUGE ones marked slow."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in HUGE else n for n in (names or list_models())]

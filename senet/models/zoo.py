"""Imports every model family so that each registers its networks (done once, on first use)."""

from . import (  # noqa: F401  (importing a family registers its networks)
    cifar_resnet,
    densenet,
    efficientnet,
    inception,
    inception_resnet,
    mobilenet,
    mobilenet_v3,
    resnet,
    shufflenet,
    vgg,
)

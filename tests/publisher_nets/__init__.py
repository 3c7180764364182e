"""Reference networks: what each publisher's network computes, under the publisher's own state_dict keys.

Written for the conversion tests from a reading of each publisher's model definition (the code is not
copied: these are compact re-statements of the same computation, module by module, in the publisher's
registration order so that ``state_dict()`` lists the publisher's keys and shapes in the publisher's
order, checked against ``tests/reference/checkpoint-keys``):

* ``legacy_senet``: the SE authors' Caffe models as converted by Cadene (``pretrainedmodels/models/
  senet.py``) and kept by timm (``timm/models/senet.py``, ``legacy_se*``): ``SEResNetBottleneck``
  (stride in the first 1x1), ``SEResNeXtBottleneck`` (stride in the 3x3, width floor(planes * d / 64) * C),
  ``SEBottleneck`` (SENet-154: first 1x1 at 2 * planes, 3x3 at 4 * planes with 64 groups),
  timm's ``SEResNetBlock`` (SE-ResNet-18/34, with a ReLU between the second BN and SE); stem ``layer0``
  ending in ``MaxPool2d(3, 2, ceil_mode=True)`` without padding; SE = ``channels // 16`` hidden units.
* ``modern_resnet``: torchvision's ``torchvision/models/resnet.py`` and timm's ``timm/models/resnet.py``
  (stride in the 3x3, stem max pool with padding 1), timm's SE being ``timm/layers/squeeze_excite.py``
  ``SEModule`` (hidden = ``make_divisible(C / 16, 8, round_limit=0)``, after ``bn3``).
* ``tv_vgg16_bn``, ``tv_densenet121``, ``tv_mobilenet_v3_large``, ``tv_efficientnet_b0``: torchvision's
  ``vgg.py``, ``densenet.py``, ``mobilenetv3.py``, ``efficientnet.py`` and ``ops/misc.py``
  (``Conv2dNormActivation``, ``SqueezeExcitation``).
* ``inception_resnet_v2``: the TF-slim port (timm's ``inception_resnet_v2.py``, Cadene's
  ``inceptionresnetv2.py``): BN eps 1e-3, the last C block (``block8``) with scale 1.0 and no ReLU.

Heads: Cadene's SENet ends in ``AvgPool2d(7)`` and his Inception-ResNet-v2 in ``AvgPool2d(8,
count_include_pad=False)``; timm (and torchvision everywhere) pool globally. ``head='cadene'`` builds
Cadene's fixed pool, which equals the global average exactly when the last feature map is 7x7 (224 px)
or 8x8 (299 px); the default is the global average, so small inputs can be used.

One module per publisher's family (``legacy``, ``modern``, ``tv``, ``inception``); this one holds the
catalogue.
"""

from __future__ import annotations

from .inception import InceptionResNetV2
from .legacy import LegacySENet
from .modern import ModernResNet
from .tv import TvDenseNet121, TvEfficientNetB0, TvMobileNetV3Large, TvVGG16BN
from .weights import listing_layout, randomize_

__all__ = ["PUBLISHER_NETS", "InceptionResNetV2", "LegacySENet", "ModernResNet", "listing_layout", "randomize_"]

# Catalogue: listing name -> (builder of the reference net, our registered model)
PUBLISHER_NETS = {
    "legacy_seresnet18": (lambda: LegacySENet("basic", (2, 2, 2, 2)), "se_resnet18"),
    "legacy_seresnet50": (lambda: LegacySENet("resnet", (3, 4, 6, 3)), "se_resnet50"),
    "legacy_seresnext50_32x4d": (lambda: LegacySENet("resnext", (3, 4, 6, 3)), "se_resnext50_32x4d"),
    "legacy_senet154": (lambda: LegacySENet("senet", (3, 8, 36, 3)), "senet154"),
    "resnet50": (lambda: ModernResNet("bottleneck", (3, 4, 6, 3)), "resnet50"),
    "seresnet50": (lambda: ModernResNet("bottleneck", (3, 4, 6, 3), se=True), "se_resnet50"),
    "seresnext50_32x4d": (
        lambda: ModernResNet("bottleneck", (3, 4, 6, 3), groups=32, base_width=4, se=True), "se_resnext50_32x4d"
    ),
    "tv_resnet18": (lambda: ModernResNet("basic", (2, 2, 2, 2)), "resnet18"),
    "tv_resnet101": (lambda: ModernResNet("bottleneck", (3, 4, 23, 3)), "resnet101"),
    "tv_resnext50_32x4d": (
        lambda: ModernResNet("bottleneck", (3, 4, 6, 3), groups=32, base_width=4), "resnext50_32x4d"
    ),
    "tv_vgg16_bn": (TvVGG16BN, "vgg16_bn"),
    "tv_densenet121": (TvDenseNet121, "densenet121"),
    "tv_mobilenet_v3_large": (TvMobileNetV3Large, "mobilenet_v3_large"),
    "tv_efficientnet_b0": (TvEfficientNetB0, "efficientnet_b0"),
    "inception_resnet_v2": (InceptionResNetV2, "inception_resnet_v2"),
}

"""torchvision's naming of its VGG-16-BN, DenseNet-121, MobileNetV3-Large and EfficientNet-B0.

torchvision keeps these networks as ``features`` (one ``nn.Sequential`` indexed by position, activations
and pools included) and ``classifier``; ours name the same layers by stage and role. The maps below are
explicit rules, derived from the order of our keys (which layers exist, which block has an expansion or
an SE module), not a positional pairing; the tests check the result against torchvision's listings.

What the keys do not show, read from torchvision's ``vgg.py``, ``densenet.py``, ``mobilenetv3.py``,
``efficientnet.py`` and ``ops/misc.py`` and checked by running reference re-implementations of them
against ours in float64 (``docs/conversion.md``); ``naming_options(naming, model)`` gives the options:

* EfficientNet-B0: BatchNorm eps 1e-5 (``nn.BatchNorm2d``'s default; torchvision passes 1e-3 only to
  B5-B7 and the V2 models), ours 1e-3 (the TensorFlow value): ``bn_eps=1e-5``. The rest is ours: SE
  hidden width ``max(1, C_in // 4)`` from the block's input width, SiLU and sigmoid; symmetric padding
  ``(k - 1) // 2``; stochastic depth and dropout only in training.
* MobileNetV3-Large: eps 1e-3 as ours (``bn_eps=1e-3``); SE hidden width
  ``_make_divisible(C_exp // 4, 8)``, ReLU and hard sigmoid; head Linear(960, 1280), hard-swish,
  dropout, Linear; as ours.
* VGG-16-BN and DenseNet-121: our defaults compute the same function (7x7 adaptive pool before the
  classifier of VGG; ReLU after ``norm5`` and global average in DenseNet); no options.

Plain torchvision networks have no SE: ``se_vgg16_bn`` and ``se_densenet121`` have no public keys here.
"""

from __future__ import annotations

import re
from typing import Any

from .naming import Naming

# (N, ...) positions of the conv and BN inside torchvision's Conv2dNormActivation and in our ConvBnAct.
_CONV_BN = {"conv": "0", "bn": "1"}
# Our VGG head -> its position in torchvision's classifier (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear).
_VGG_CLASSIFIER = {"fc6": 0, "fc7": 3, "fc": 6}


def _ordered(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _vgg(keys: list[str]) -> dict[str, str | None]:
    # features: conv, BN, ReLU per layer, a max pool after each stage; classifier: fc6, ReLU, dropout, ...
    layers = _ordered([re.match(r"stages\.\d+\.\d+", k).group(0) for k in keys if k.startswith("stages.")])
    index, position, stage = {}, 0, None
    for layer in layers:
        this_stage = layer.split(".")[1]
        if stage is not None and this_stage != stage:
            position += 1  # the pool
        stage = this_stage
        index[layer] = position
        position += 3 if any(k.startswith(f"{layer}.bn.") for k in keys) else 2
    out: dict[str, str | None] = {}
    for k in keys:
        m = re.match(r"(stages\.\d+\.\d+)\.(conv|bn|se)\.(.+)", k)
        if m:
            layer, part, rest = m.groups()
            out[k] = None if part == "se" else f"features.{index[layer] + (part == 'bn')}.{rest}"
        else:
            head, rest = k.split(".", 1)
            out[k] = f"classifier.{_VGG_CLASSIFIER[head]}.{rest}"
    return out


def _densenet(keys: list[str]) -> dict[str, str | None]:
    # Our stage s > 0 is (transition s, dense block s + 1); torchvision numbers both from 1.
    n_blocks = len(_ordered([k.split(".")[1] for k in keys if k.startswith("stages.")]))
    out: dict[str, str | None] = {}
    for k in keys:
        if m := re.fullmatch(r"stem\.([01])\.(.+)", k):
            out[k] = f"features.{'conv0' if m[1] == '0' else 'norm0'}.{m[2]}"
        elif m := re.fullmatch(r"stages\.(\d+)\.\d+\.layers\.(\d+)\.(.+)", k):
            out[k] = f"features.denseblock{int(m[1]) + 1}.denselayer{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"stages\.(\d+)\.\d+\.((norm|conv)\..+)", k):
            out[k] = f"features.transition{m[1]}.{m[2]}"
        elif k.startswith("norm."):
            out[k] = f"features.norm{n_blocks + 1}.{k[5:]}"
        elif k.startswith("fc."):
            out[k] = f"classifier.{k[3:]}"
        else:  # the SE modules of se_densenet121
            out[k] = None
    return out


def _inverted_residuals(keys: list[str], *, nested: bool, classifier: dict[str, str]) -> dict[str, str | None]:
    # MobileNetV3 (flat: features.i.block.j) and EfficientNet (nested: features.s.b.block.j): the block's
    # parts in order (expansion conv if any, depthwise conv, SE if any, projection) are block.0, .1, ...
    blocks = _ordered([re.match(r"stages\.\d+\.\d+", k).group(0) for k in keys if re.match(r"stages\.\d+\.\d+\.", k)])
    parts = {b: _ordered([k.split(".")[3] for k in keys if k.startswith(b + ".")]) for b in blocks}
    n_stages = len(_ordered([b.split(".")[1] for b in blocks]))
    out: dict[str, str | None] = {}
    for k in keys:
        if m := re.fullmatch(r"stem\.(conv|bn)\.(.+)", k):
            out[k] = f"features.0.{_CONV_BN[m[1]]}.{m[2]}"
        elif m := re.fullmatch(r"(stages\.(\d+)\.(\d+))\.(\w+)\.(\w+)\.(.+)", k):
            block, stage, index, part, sub, rest = m.groups()
            where = f"{int(stage) + 1}.{index}" if nested else str(blocks.index(block) + 1)
            sub = _CONV_BN.get(sub, sub) if part != "se" else sub
            out[k] = f"features.{where}.block.{parts[block].index(part)}.{sub}.{rest}"
        elif m := re.fullmatch(r"stages\.\d+\.(conv|bn)\.(.+)", k):  # the last 1x1 convolution
            last = n_stages + 1 if nested else len(blocks) + 1
            out[k] = f"features.{last}.{_CONV_BN[m[1]]}.{m[2]}"
        else:
            head, rest = k.split(".", 1)
            out[k] = f"classifier.{classifier[head]}.{rest}"
    return out


def torchvision_key_map(family: str, keys: list[str]) -> dict[str, str | None]:
    """Our keys of a VGG, DenseNet, MobileNetV3 or EfficientNet -> torchvision's."""
    if family == "VGG":
        return _vgg(keys)
    if family == "DenseNet":
        return _densenet(keys)
    if family == "MobileNetV3":
        return _inverted_residuals(keys, nested=False, classifier={"conv_head": "0", "fc": "3"})
    return _inverted_residuals(keys, nested=True, classifier={"fc": "1"})


# BatchNorm eps of torchvision's networks where our config has the field (VGG and DenseNet use 1e-5, as ours).
_BN_EPS = {"MobileNetV3": 1e-3, "EfficientNet": 1e-5}


def torchvision_options(family: str, config: Any) -> dict[str, Any]:
    """The options under which our network computes what torchvision's network computes."""
    return {"bn_eps": _BN_EPS[family]} if family in _BN_EPS else {}


TORCHVISION = Naming(
    name="torchvision",
    description="torchvision's VGG, DenseNet, MobileNetV3 and EfficientNet: features.N..., classifier.N",
    families=("VGG", "DenseNet", "MobileNetV3", "EfficientNet"),
    patterns=(r"features\.[\w.]+", r"classifier\.(\d+\.)?(weight|bias)"),
    key_map=torchvision_key_map,
    options=torchvision_options,
    # torchvision's DenseNet weights predate its module names: 'denselayer1.norm.1' is 'denselayer1.norm1'.
    aliases=((r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.", r"\1\2."),),
)

"""The two namings of public ResNet-family checkpoints (ResNet, ResNeXt, SE-ResNe(X)t, SENet-154).

* ``legacy``: the SE authors' Caffe models converted to PyTorch (Cadene's ``pretrainedmodels``, timm's
  ``legacy_se*``): the stem is ``layer0`` (``conv1``/``bn1``, or ``conv1..3``/``bn1..3`` for
  SENet-154's deep stem), SE is ``se_module``, the classifier ``last_linear``.
* ``modern``: timm's and torchvision's ResNets (``conv1``/``bn1``, ``layerN.M.{conv,bn}K``,
  ``se.fc1/fc2``, ``downsample``, ``fc``): our own keys, so the map is the identity.

What the keys do not show, read from the publishers' model definitions (Cadene's and timm's
``senet.py``, timm's ``resnet.py`` and ``squeeze_excite.py``, torchvision's ``resnet.py``) and checked
by running reference re-implementations of them against ours in float64 (``docs/conversion.md``);
``naming_options(naming, model)`` gives the options below:

* ``legacy``: the stem's max pool is ``MaxPool2d(3, 2, ceil_mode=True)`` without padding
  (``stem_pool='ceil'``; ours by default: padding 1). The SE-ResNets (``SEResNetBottleneck``) put the
  stride on the first 1x1 convolution (``stride_in_1x1=True``), the SE-ResNeXts and SENet-154 on the
  3x3 (``stride_in_1x1=False``). timm's legacy SE-ResNet-18/34 (``SEResNetBlock``) apply a ReLU after
  the second BN, before SE (``relu_before_se=True``). Otherwise as ours: SE hidden width
  ``C // 16`` with biases, ReLU and sigmoid, on the branch after the last BN and before the addition;
  SENet-154's deep stem, 3x3 stride-2 projections, first 1x1 at half the 3x3's width; BN eps 1e-5.
  Cadene's head averages with ``AvgPool2d(7)``, which takes only a 7x7 map (224 px input) and then is
  our global average; timm's legacy models pool globally at any size.
* ``modern``: stride on the 3x3 convolution ("v1.5": ``stride_in_1x1=False``, also for ``resnet*`` and
  ``se_resnet*``, whose default is the paper's v1), stem max pool with padding 1 (``stem_pool='pad'``).
  timm's SE hidden width is ``make_divisible(C / 16, 8)``, which is ``C // 16`` for every ResNet width.
"""

from __future__ import annotations

from typing import Any

from .naming import Naming

# Our SENet-154 deep stem (timm's layout) -> the legacy ``layer0`` names.
_DEEP_STEM = {
    "conv1.0.": "layer0.conv1.",
    "conv1.1.": "layer0.bn1.",
    "conv1.3.": "layer0.conv2.",
    "conv1.4.": "layer0.bn2.",
    "conv1.6.": "layer0.conv3.",
    "bn1.": "layer0.bn3.",
}
_STEM = {"conv1.": "layer0.conv1.", "bn1.": "layer0.bn1."}


def _legacy_key(key: str, stem: dict[str, str]) -> str:
    for ours, theirs in {**stem, "fc.": "last_linear."}.items():
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    return key.replace(".se.", ".se_module.", 1)


def legacy_key_map(family: str, keys: list[str]) -> dict[str, str | None]:
    """Our ResNet keys -> the legacy (Caffe conversion) keys."""
    stem = _DEEP_STEM if any(k.startswith("conv1.0.") for k in keys) else _STEM
    return {k: _legacy_key(k, stem) for k in keys}


def legacy_options(family: str, config: Any) -> dict[str, Any]:
    """The options under which our ResNet computes what the legacy (Caffe-converted) network computes."""
    if getattr(config, "block", "bottleneck") == "basic":
        return {"stem_pool": "ceil", "relu_before_se": True}  # timm's SEResNetBlock: ReLU between bn2 and SE
    # SEResNetBottleneck strides in the first 1x1; SEResNeXtBottleneck and SEBottleneck (SENet-154) in the 3x3.
    return {"stem_pool": "ceil", "stride_in_1x1": getattr(config, "groups", 1) == 1}


def modern_options(family: str, config: Any) -> dict[str, Any]:
    """The options under which our ResNet computes what timm's and torchvision's ResNets compute."""
    if getattr(config, "block", "bottleneck") == "basic":
        return {"stem_pool": "pad", "relu_before_se": False}
    return {"stem_pool": "pad", "stride_in_1x1": False}


def modern_key_map(family: str, keys: list[str]) -> dict[str, str | None]:
    """Our ResNet keys are the modern naming's."""
    return {k: k for k in keys}


_BLOCK = r"layer[1-9]\.\d+\."
_PARAM = r"\.(weight|bias|running_mean|running_var|num_batches_tracked)"

LEGACY = Naming(
    name="legacy",
    description="the SE authors' converted Caffe models (pretrainedmodels, timm legacy_se*): layer0, se_module",
    families=("ResNet",),
    patterns=(
        rf"layer0\.(conv|bn)[1-3]{_PARAM}",
        rf"{_BLOCK}((conv|bn)[1-3]|se_module\.fc[12]|downsample\.[01]){_PARAM}",
        r"last_linear\.(weight|bias)",
    ),
    key_map=legacy_key_map,
    options=legacy_options,
)

MODERN = Naming(
    name="modern",
    description="timm's and torchvision's ResNets: conv1/bn1, layerN.M, se.fc1/fc2, downsample, fc",
    families=("ResNet",),
    patterns=(
        rf"(conv1|bn1|conv1\.[0-9]){_PARAM}",
        rf"{_BLOCK}((conv|bn)[1-3]|se\.fc[12]|downsample\.[01]){_PARAM}",
        r"fc\.(weight|bias)",
    ),
    key_map=modern_key_map,
    options=modern_options,
)

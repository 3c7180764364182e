"""The two namings of public ResNet-family checkpoints (ResNet, ResNeXt, SE-ResNet(X)t, SENet-154).

* ``legacy``: the SE authors' Caffe models converted to PyTorch (Cadene's ``pretrainedmodels``, timm's
  ``legacy_se*``): the stem is ``layer0`` (``conv1``/``bn1``, or ``conv1..3``/``bn1..3`` for
  SENet-154's deep stem), SE is ``se_module``, the classifier ``last_linear``.
* ``modern``: timm's and torchvision's ResNets (``conv1``/``bn1``, ``layerN.M.{conv,bn}K``,
  ``se.fc1/fc2``, ``downsample``, ``fc``): our own keys, so the map is the identity.

What the keys do not show (the weights load either way; the outputs differ):

* Stride placement: torchvision's and timm's ResNets are "v1.5" (stride in the 3x3 convolution), so
  build ``resnet*``/``se_resnet*`` with ``stride_in_1x1=False`` to compute as they do. The legacy
  SE-ResNets keep the stride in the first 1x1 (our default), the legacy SE-ResNeXts and SENet-154 in
  the 3x3 (our default too).
* The legacy stem's max pool is ``MaxPool2d(3, 2, ceil_mode=True)`` without padding (ours by default:
  padding 1, floor): the same 56x56 at 224 px, but windows shifted by one pixel; build the model with
  ``stem_pool='ceil'`` to compute as they do. pretrainedmodels' head averages
  with ``AvgPool2d(7)``, our global average only at 224 px (timm's legacy models pool globally).
* BatchNorm eps is 1e-5 in all of them, as ours.
"""

from __future__ import annotations

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
)

"""The naming of the public Inception-ResNet-v2 port of the TF-slim model (Cadene's pretrainedmodels, timm).

Top-level modules named after the TF-slim scopes: ``conv2d_1a`` .. ``conv2d_4a`` (our ``stem``),
``mixed_5b`` and ``repeat.0..9`` (our ``stage3``: the A blocks), ``mixed_6a`` and ``repeat_1.0..19``
(``stage4``: the B blocks), ``mixed_7a``, ``repeat_2.0..8``, ``block8`` (the last C block, without
ReLU) and ``conv2d_7b`` (``stage5``); inside a block ``branchK`` is our ``branches.K`` and ``conv2d``
our ``up``. The classifier is ``classif`` (timm) or ``last_linear`` (pretrainedmodels).

What the keys do not show, read from both ports' ``inception_resnet_v2.py`` / ``inceptionresnetv2.py``
and checked by running a reference re-implementation against ours in float64 (``docs/conversion.md``):

* The very last C block (``block8``, no ReLU) is built with its default scale 1.0, the nine before it
  with 0.20 (as in TF-slim); ours scales all ten by 0.20 unless ``last_block_scale=1.0``, which
  ``naming_options('tf_slim', ...)`` gives.
* As ours: BatchNorm eps 1e-3, unpadded stem and reduction convolutions, ``count_include_pad=False``
  in Mixed_5b's average pool, biased 1x1 up-projections. timm pools globally; Cadene's head is
  ``AvgPool2d(8, count_include_pad=False)``, the global average only on the 8x8 map of a 299-330 px
  input (on a larger map it averages the top-left 8x8 window; below 299 px it fails).
* Both expect inputs scaled to [-1, 1] (mean = std = 0.5), not the ImageNet mean and std; Cadene's
  1001-class release has a background class first (dropped for ``'imagenet'``).
"""

from __future__ import annotations

import re
from typing import Any

from .naming import Naming

# Per stage: the name of its first module, of its residual blocks; stage 5 then has block8, conv2d_7b.
_STAGES = {"stage3": ("mixed_5b", "repeat"), "stage4": ("mixed_6a", "repeat_1"), "stage5": ("mixed_7a", "repeat_2")}


def tf_slim_options(family: str, config: Any) -> dict[str, Any]:
    """The options under which our Inception-ResNet-v2 computes what the TF-slim port computes."""
    return {"last_block_scale": 1.0}


def inception_resnet_key_map(family: str, keys: list[str]) -> dict[str, str | None]:
    """Our Inception-ResNet-v2 keys -> the TF-slim port's."""
    children = {
        stage: list(dict.fromkeys(int(k.split(".")[1]) for k in keys if k.startswith(stage + "."))) for stage in _STAGES
    }
    names: dict[tuple[str, int], str] = {}
    for stage, (first, repeat) in _STAGES.items():
        found = children[stage]
        blocks = found[1:-1] if stage == "stage5" else found[1:]
        names[(stage, found[0])] = first
        for i, child in enumerate(blocks):
            names[(stage, child)] = f"{repeat}.{i}"
        if stage == "stage5":
            names[(stage, blocks[-1])] = "block8"
            names[(stage, found[-1])] = "conv2d_7b"
    out: dict[str, str | None] = {}
    for k in keys:
        if k.startswith("stem."):
            out[k] = k[5:]
        elif k.startswith("fc."):
            out[k] = "classif." + k[3:]
        else:
            stage, child, rest = k.split(".", 2)
            if rest.startswith("se."):
                out[k] = None
                continue
            rest = re.sub(r"^branches\.(\d+)\.", r"branch\1.", rest)
            rest = re.sub(r"^up\.", "conv2d.", rest)
            out[k] = f"{names[(stage, int(child))]}.{rest}"
    return out


TF_SLIM = Naming(
    name="tf_slim",
    description="the TF-slim Inception-ResNet-v2 port (pretrainedmodels, timm): mixed_5b, repeat_1, block8",
    families=("InceptionResNetV2",),
    patterns=(r"(conv2d_\w+|mixed_\w+|repeat(_[12])?\.\d+|block8)\.[\w.]+", r"(classif|last_linear)\.(weight|bias)"),
    key_map=inception_resnet_key_map,
    options=tf_slim_options,
    aliases=((r"^last_linear\.", "classif."),),
)

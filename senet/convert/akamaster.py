"""akamaster's naming of the public CIFAR-10 ResNets (``pytorch_resnet_cifar10``, BSD-2-Clause).

The most used public CIFAR-10 checkpoints (``resnet20-12fca82f.th`` ... ``resnet1202-f3b1deed.th``,
He et al., arXiv:1512.03385, Sec. 4.2) come from github.com/akamaster/pytorch_resnet_cifar10. Their keys
are ours (``conv1``, ``bn1``, ``layerN.M.conv1/bn1/conv2/bn2``) but for the classifier, ``linear``; the
files wrap them in ``{"state_dict": ..., "best_prec1": ...}`` with DataParallel's ``module.`` prefix,
which reading and ``convert_state_dict`` remove.

What the keys do not show, read from the publisher's ``resnet.py`` (commit d5489e89) and checked
against its own outputs on the embedded CIFAR-10 (tests/test_pretrained_akamaster.py): the option-A
shortcut pads the subsampled input (``x[:, :, ::2, ::2]``) with ``planes // 4`` zero channels on EACH
side of the channel dimension, ours by default all after it. With ``shortcut_pad='both'`` our network
computes the publisher's function; without it the same weights load without a complaint and score
13.6% instead of 81.03% on the embedded test split. The rest is ours: 3x3 stem of 16 channels, no max
pool, BN eps 1e-5, global average pool, one linear layer.
"""

from __future__ import annotations

from typing import Any

from .naming import Naming


def akamaster_key_map(family: str, keys: list[str]) -> dict[str, str | None]:
    """Our CIFAR ResNet keys -> akamaster's: the classifier ``fc`` is ``linear``; SE has no public key."""
    out: dict[str, str | None] = {}
    for k in keys:
        if k.startswith("fc."):
            out[k] = "linear." + k[3:]
        elif ".se." in k:
            out[k] = None  # akamaster's networks have no SE
        else:
            out[k] = k
    return out


def akamaster_options(family: str, config: Any) -> dict[str, Any]:
    """The options under which our CIFAR ResNet computes akamaster's network: zeros on both sides."""
    return {"shortcut_pad": "both"}


_PARAM = r"\.(weight|bias|running_mean|running_var|num_batches_tracked)"

AKAMASTER = Naming(
    name="akamaster",
    description="akamaster/pytorch_resnet_cifar10's CIFAR-10 ResNets: conv1/bn1, layerN.M, linear",
    families=("CifarResNet",),
    patterns=(
        rf"(conv1|bn1){_PARAM}",
        rf"layer[1-3]\.\d+\.(conv|bn)[12]{_PARAM}",
        r"linear\.(weight|bias)",
    ),
    key_map=akamaster_key_map,
    options=akamaster_options,
)

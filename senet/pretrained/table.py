"""The pretrained table's look-ups: ``list_pretrained`` and ``get_pretrained`` over ``PRETRAINED``.

``PRETRAINED`` is every entry of ``senet.pretrained.entries`` (the data: ImageNet-1k and CIFAR-10
checkpoints), in table order; the schema (``PretrainedWeights``, ``Preprocessing``) is in
``senet.pretrained.schema``. ``create_model(name, pretrained=True | tag)`` and ``senet pretrained list``
read the table through these functions.
"""

from __future__ import annotations

import re

from .._validation import did_you_mean
from ..models.registry import canonical_model_name, get_model_entry, list_models
from .entries import PRETRAINED
from .schema import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    Preprocessing,
    PretrainedWeights,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "PRETRAINED",
    "Preprocessing",
    "PretrainedWeights",
    "file_hash_prefix",
    "get_pretrained",
    "list_pretrained",
]

# ---------------------------------------------------------------------------------------------------
# Look-ups

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.")


def file_hash_prefix(url: str) -> str | None:
    """The hex digits a file name carries after its last ``-`` (``resnet50-0676ba61.pth`` -> ``'0676ba61'``).

    torch.hub, torchvision, timm and pretrainedmodels name files ``<name>-<sha256 prefix>.<ext>``
    (``torch.hub.load_state_dict_from_url(check_hash=True)`` checks it); ``None`` for other names.
    """
    found = _HASH_IN_NAME.findall(url.rsplit("/", 1)[-1])
    return found[-1] if found else None


def _canonical(model: str) -> str:
    return canonical_model_name(model)


def _models_with_checkpoints() -> list[str]:
    return list(dict.fromkeys(w.model for w in PRETRAINED))


def list_pretrained(model: str | None = None) -> list[PretrainedWeights]:
    """The public checkpoints, in table order; of ``model`` only if given (its default first).

    Args:
        model: A registered model name (or an alias); ``None`` lists every checkpoint.

    Returns:
        The entries; an empty list for a registered model without a public checkpoint.

    Raises:
        ValueError: If ``model`` is not a registered model name (with the close matches).
    """
    if model is None:
        return list(PRETRAINED)
    name = get_model_entry(model).name  # raises on an unknown name, with suggestions
    entries = [w for w in PRETRAINED if w.model == name]
    return sorted(entries, key=lambda w: not w.default)


def get_pretrained(model: str, tag: str | bool | None = True) -> PretrainedWeights:
    """One checkpoint of ``model``: its default (``tag=True`` or ``None``) or the one tagged ``tag``.

    Args:
        model: A registered model name (or an alias).
        tag: ``True``/``None`` for the model's default checkpoint, else a tag of ``list_pretrained(model)``.

    Returns:
        The table entry.

    Raises:
        ValueError: In one line: an unknown model; a model without a public checkpoint (listing the models
            that have one); an unknown tag (the closest tags, then all of them, the default first).
    """
    name = _canonical(model)
    entries = [w for w in PRETRAINED if w.model == name]
    if not entries:
        have = _models_with_checkpoints()
        if name not in list_models():
            raise ValueError(
                f"unknown model {model!r}{did_you_mean(name, list_models())} (models with a public "
                f"checkpoint: {', '.join(have)})"
            )
        raise ValueError(
            f"no public checkpoint exists for model {name!r}{did_you_mean(name, have, n=3)} "
            f"(models with one: {', '.join(have)})"
        )
    tags = [w.tag for w in sorted(entries, key=lambda w: not w.default)]
    if tag is True or tag is None:
        return next(w for w in entries if w.default)
    if tag is False or not isinstance(tag, str):
        raise ValueError(f"tag must be True, None or one of {', '.join(tags)} for model {name!r}, got {tag!r}")
    for w in entries:
        if w.tag == tag:
            return w
    raise ValueError(
        f"model {name!r} has no checkpoint tagged {tag!r}{did_you_mean(tag, tags, n=3, cutoff=0.4)} "
        f"(tags: {', '.join(tags)}; the first is the default)"
    )

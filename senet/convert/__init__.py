"""Public ImageNet checkpoints in this library's keys: ``convert_state_dict`` and its namings.

    >>> sd = torch.load("legacy_seresnet50.pth")                       # layer0.*, se_module, last_linear
    >>> model = senet.create_model("se_resnet50")
    >>> model.load_state_dict(senet.convert_state_dict(sd, model="se_resnet50"))

A naming (``list_namings()``) is recognised from the keys alone (``source="auto"``); the conversion is
a renaming only (the very same tensors), exact in both directions, and checked against the model's keys
and shapes. The keys do not show everything a public model computes (stride placement, pooling, BatchNorm
eps): ``naming_options`` gives the ``create_model`` options under which our model computes the
publisher's function, and each naming's module says where the public models differ from ours:

    >>> options = naming_options(detect_naming(sd), "se_resnet50")   # {'stem_pool': 'ceil', ...}
    >>> model = senet.create_model("se_resnet50", **options)

docs/conversion.md says how each was checked: against the float64 logits the publishers' own networks
compute (timm's, torchvision's; ``tests/test_publisher_outputs.py``), and against reference networks
restated from the publishers' model definitions (a second opinion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .._validation import did_you_mean
from .akamaster import AKAMASTER
from .inception_resnet import TF_SLIM
from .naming import Naming, model_layout
from .prefixes import common_prefix, strip_prefixes
from .resnet import LEGACY, MODERN
from .torchvision import TORCHVISION

__all__ = [
    "Naming",
    "convert_state_dict",
    "detect_naming",
    "fitting_namings",
    "get_naming",
    "list_namings",
    "naming_options",
    "register_naming",
    "strip_prefixes",
]

OURS = "ours"
_NAMINGS: dict[str, Naming] = {}


def register_naming(naming: Naming) -> None:
    """Adds a naming to the registry.

    Raises:
        ValueError: If its name is taken (or is ``'ours'`` or ``'auto'``).
    """
    if naming.name in _NAMINGS or naming.name in (OURS, "auto"):
        raise ValueError(f"naming {naming.name!r} is already registered")
    _NAMINGS[naming.name] = naming


for _naming in (LEGACY, MODERN, TORCHVISION, TF_SLIM, AKAMASTER):
    register_naming(_naming)


def list_namings() -> list[str]:
    """The registered checkpoint namings, in registration order (see ``get_naming(name).description``)."""
    return list(_NAMINGS)


def get_naming(name: str) -> Naming:
    """The naming called ``name``.

    Raises:
        ValueError: On an unknown name, with the close matches and the valid names.
    """
    if name not in _NAMINGS:
        raise ValueError(f"unknown naming {name!r}{did_you_mean(name, _NAMINGS)} (namings: {', '.join(_NAMINGS)})")
    return _NAMINGS[name]


def detect_naming(keys: Mapping[str, Any] | list[str]) -> Naming:
    """The naming every one of ``keys`` fits.

    Args:
        keys: A state dict or its keys.

    Returns:
        The naming whose patterns all keys match (the best-scoring one).

    Raises:
        ValueError: When no naming fits every key: one line naming the closest naming (only where some
            keys fit it) and the first keys that do not fit.
    """
    keys = list(keys)
    if not keys:
        raise ValueError("the state dict is empty")
    best = max(_NAMINGS.values(), key=lambda n: n.detect(keys))
    misfits = best.misfits(keys)
    if misfits:
        shown = ", ".join(map(repr, misfits[:3]))
        fit = len(keys) - len(misfits)
        closest = f"closest: {best.name!r} ({fit} of {len(keys)} keys fit); " if fit else ""
        prefix = common_prefix(keys)
        prefixed = f"; every key starts with {prefix!r}, a prefix this library does not remove" if prefix else ""
        raise ValueError(
            f"the state dict fits no known naming; {closest}first keys that do not fit: {shown} "
            f"(namings: {', '.join(_NAMINGS)}){prefixed}"
        )
    return best


def fitting_namings(keys: Mapping[str, Any] | list[str], family: str | None = None) -> list[str]:
    """Every registered naming that all of ``keys`` fit (and that covers ``family``, where one is given).

    Args:
        keys: A state dict or its keys (wrapper prefixes already removed).
        family: A model family (builder class name, e.g. ``'ResNet'``), or ``None`` for any.

    Returns:
        The names, in registration order; ``[]`` when none fits.
    """
    keys = list(keys)
    return [
        n.name
        for n in _NAMINGS.values()
        if keys and (family is None or family in n.families) and not n.misfits(keys)
    ]


def convert_state_dict(
    state_dict: Mapping[str, Any],
    source: str = "auto",
    *,
    model: str | nn.Module,
    target: str = OURS,
) -> dict[str, Any]:
    """Renames a checkpoint's state dict from one naming to another (by default: to ``model``'s keys).

    Args:
        state_dict: The checkpoint's tensors (wrapper prefixes on every key, ``module.``, ``_orig_mod.``
            and the like, are removed: ``senet.convert.prefixes``).
        source: The state dict's naming: ``'auto'`` (recognised from the keys), ``'ours'`` or one of
            ``list_namings()``.
        model: The network the tensors belong to: a registered name (``'se_resnet50'``) or a model.
        target: ``'ours'`` (``model``'s own keys, ready for ``load_state_dict``) or a naming, to write
            our weights out in a public naming.

    Returns:
        A new dict holding the very same tensors, in the target's key order.

    Raises:
        ValueError: On an unknown naming, a state dict that fits no naming or not ``model`` (or whose keys
            are not all strings), or a model the naming does not cover; always one line.
        TypeError: If ``state_dict`` is not a mapping or ``model`` neither a name nor a module.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    odd = [k for k in state_dict if not isinstance(k, str)]
    if odd:
        shown = f"{odd[0]!r} ({type(odd[0]).__name__})"
        raise ValueError(f"a state dict's keys are names (str); this one has the key {shown}")
    _, shown, own = model_layout(model)  # an unknown model fails here, also where nothing is renamed
    state_dict, _ = strip_prefixes(state_dict)
    if target != OURS:
        get_naming(target)
    if source == "auto":
        same = set(state_dict) <= set(own) and all(k in state_dict or k.endswith(".num_batches_tracked") for k in own)
        source = OURS if same else detect_naming(state_dict).name
    if source == OURS:
        ours = _in_model_order(state_dict, own, shown)
    else:
        ours = get_naming(source).to_ours(state_dict, model)
    return ours if target == OURS else get_naming(target).from_ours(ours, model)


def _in_model_order(state_dict: Mapping[str, Any], own: dict[str, tuple[int, ...]], shown: str) -> dict[str, Any]:
    """A state dict in our keys, its shapes checked against the model's and its keys in the model's order
    (keys the model lacks follow, for the caller to report), as ``Naming.to_ours`` gives the others."""
    wrong = [
        f"{k} {tuple(v.shape)} in the checkpoint, {own[k]} in the model"
        for k, v in state_dict.items()
        if k in own and hasattr(v, "shape") and tuple(v.shape) != own[k]
    ]
    if wrong:
        raise ValueError(f"shapes that do not fit model {shown}: {'; '.join(wrong[:3])}")
    ordered = {k: state_dict[k] for k in own if k in state_dict}
    ordered.update((k, v) for k, v in state_dict.items() if k not in own)
    return ordered


def naming_options(naming: str | Naming, model: str | nn.Module) -> dict[str, Any]:
    """The ``create_model`` options under which ``model`` computes what the publisher's network computes.

    The keys of a checkpoint do not show pooling, stride placement, BatchNorm eps and the like; this
    gives, for a naming and one of our networks, the config fields to set. It depends on both: the
    legacy SE-ResNets put the stride on the 1x1 convolution, the legacy SE-ResNeXts on the 3x3.

        >>> naming_options("legacy", "se_resnet50")
        {'stem_pool': 'ceil', 'stride_in_1x1': True}
        >>> model = create_model("se_resnet50", **naming_options(detect_naming(sd), "se_resnet50"))

    Args:
        naming: A naming (a name from ``list_namings()`` or a ``Naming``); ``'ours'`` has no options.
        model: A registered name or a model (its ``config`` is read).

    Returns:
        ``{option: value}`` for ``create_model``; empty where our defaults compute the same function.

    Raises:
        ValueError: On an unknown naming or a model the naming does not cover.
    """
    if isinstance(naming, str):
        if naming == OURS:
            return {}
        naming = get_naming(naming)
    return naming.model_options(model)

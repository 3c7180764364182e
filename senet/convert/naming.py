"""A public checkpoint naming as data: how to recognise its keys and how each of our keys is called in it.

A naming is a ``key_map``: given the ordered ``state_dict`` keys of one of our models, it returns the
public name of each key (``None`` where the public models have no such tensor, e.g. SE in a plain
torchvision network). ``to_ours`` and ``from_ours`` are this one map read in both directions, so a round
trip is exact by construction: the same tensors under the same keys, in the model's own order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..models import create_model, get_model_entry
from ..utils.skeleton import meta_skeleton

KeyMap = Callable[[str, list[str]], dict[str, "str | None"]]
# (family, our config of the network) -> the create_model options reproducing the publisher's network.
OptionRule = Callable[[str, Any], dict[str, Any]]

# Old checkpoints (PyTorch < 0.4.1) have no BatchNorm step counter; BatchNorm fills it in when loading.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


def _listing(keys: Iterable[str], n: int = 3) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(map(repr, keys[:n])) + more


@functools.cache
def _registered_layout(name: str) -> tuple[str, tuple[tuple[str, tuple[int, ...]], ...]]:
    # The keys and shapes of a registered model, built on the meta device: no memory, no initialisation.
    with meta_skeleton():
        model = create_model(name)
    return type(model).__name__, tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def model_layout(model: str | nn.Module) -> tuple[str, str, dict[str, tuple[int, ...]]]:
    """The family (builder class name), a display name and the ordered ``{key: shape}`` of ``model``.

    Args:
        model: A registered model name (built on the meta device) or a model instance.
    """
    if isinstance(model, str):
        family, layout = _registered_layout(model)
        return family, repr(model), dict(layout)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a registered model name or an nn.Module, got {type(model).__name__}")
    return type(model).__name__, type(model).__name__, {k: tuple(v.shape) for k, v in model.state_dict().items()}


@dataclass(frozen=True)
class Naming:
    """One public naming of checkpoints.

    Attributes:
        name: The naming's name (``source=`` and ``target=`` of ``convert_state_dict``).
        description: Who publishes checkpoints in it, in one line.
        families: The model families (builder class names: ``'ResNet'``, ``'VGG'``, ...) it covers.
        patterns: Regular expressions; every key of the naming fully matches one of them (detection).
        key_map: ``key_map(family, our_keys) -> {our_key: public_key or None}``.
        aliases: ``(pattern, replacement)`` rewrites of other spellings of the same naming into the one
            ``from_ours`` writes (e.g. an older release's classifier name), applied by ``to_ours``.
        options: ``options(family, config) -> {option: value}``: the ``create_model`` options (config
            fields) under which our network computes what the publisher's network computes, for what the
            keys do not show (pooling, stride placement, BatchNorm eps, ...); see ``model_options``.
    """

    name: str
    description: str
    families: tuple[str, ...]
    patterns: tuple[str, ...]
    key_map: KeyMap
    aliases: tuple[tuple[str, str], ...] = ()
    options: OptionRule | None = None

    def misfits(self, keys: Iterable[str]) -> list[str]:
        """The keys (in order) that match none of the naming's patterns."""
        compiled = [re.compile(p) for p in self.patterns]
        return [k for k in keys if not any(p.fullmatch(k) for p in compiled)]

    def detect(self, keys: Iterable[str]) -> float:
        """The fraction (0..1) of ``keys`` that look like this naming; 1.0 when every key does."""
        keys = list(keys)
        return 1.0 - len(self.misfits(keys)) / len(keys) if keys else 0.0

    def _map(self, model: str | nn.Module) -> tuple[str, dict[str, tuple[int, ...]], dict[str, str]]:
        family, shown, layout = model_layout(model)
        if family not in self.families:
            raise ValueError(
                f"naming {self.name!r} covers the {', '.join(self.families)} models; model {shown} is a {family}"
            )
        mapping = self.key_map(family, list(layout))
        orphans = [k for k, v in mapping.items() if v is None]
        if orphans:
            raise ValueError(f"model {shown} has tensors that naming {self.name!r} does not have: {_listing(orphans)}")
        if len(set(mapping.values())) != len(mapping):  # a rule that merges two tensors would lose one
            raise ValueError(f"naming {self.name!r} maps two tensors of model {shown} to one key")
        return shown, layout, mapping  # type: ignore[return-value]

    def to_ours(self, state_dict: Mapping[str, Any], model: str | nn.Module) -> dict[str, Any]:
        """Renames a state dict of this naming to the keys of ``model`` (same tensors, the model's order).

        Args:
            state_dict: The public checkpoint's state dict.
            model: The target model: a registered name or an instance.

        Returns:
            A new dict holding the very same tensor objects.

        Raises:
            ValueError: On keys that do not fit, missing keys or shapes that differ (one line).
        """
        shown, layout, mapping = self._map(model)
        ours = {theirs: our for our, theirs in mapping.items()}
        renamed = {self._canonical(k): v for k, v in state_dict.items()}
        unknown = [k for k in renamed if k not in ours]
        if unknown:
            raise ValueError(f"keys that do not fit model {shown} in naming {self.name!r}: {_listing(unknown)}")
        missing = [k for k in ours if k not in renamed and not k.endswith(_OPTIONAL_SUFFIX)]
        if missing:
            raise ValueError(f"keys of model {shown} missing from the {self.name!r} state dict: {_listing(missing)}")
        wrong = [
            f"{k} {tuple(v.shape)} in the checkpoint, {layout[ours[k]]} in the model"
            for k, v in renamed.items()
            if hasattr(v, "shape") and tuple(v.shape) != layout[ours[k]]
        ]
        if wrong:
            raise ValueError(f"shapes that do not fit model {shown}: {'; '.join(wrong[:3])}")
        return {our: renamed[theirs] for our, theirs in mapping.items() if theirs in renamed}

    def from_ours(self, state_dict: Mapping[str, Any], model: str | nn.Module) -> dict[str, Any]:
        """Renames a state dict of ``model`` to this naming (same tensors, the public models' order).

        Args:
            state_dict: Our model's state dict.
            model: Our model: a registered name or an instance.

        Returns:
            A new dict holding the very same tensor objects.

        Raises:
            ValueError: On keys the model does not have, missing keys, or tensors the naming lacks.
        """
        shown, _, mapping = self._map(model)
        unknown = [k for k in state_dict if k not in mapping]
        if unknown:
            raise ValueError(f"keys that model {shown} does not have: {_listing(unknown)}")
        missing = [k for k in mapping if k not in state_dict and not k.endswith(_OPTIONAL_SUFFIX)]
        if missing:
            raise ValueError(f"keys of model {shown} missing from the state dict: {_listing(missing)}")
        return {theirs: state_dict[our] for our, theirs in mapping.items() if our in state_dict}

    def model_options(self, model: str | nn.Module) -> dict[str, Any]:
        """The ``create_model`` options with which ``model`` computes what the publisher's network does.

        Args:
            model: A registered name (its registered config is read) or a model with a ``config``.

        Returns:
            ``{config field: value}``, to pass to ``create_model(name, **options)``; empty when our
            defaults already compute the publisher's function.

        Raises:
            ValueError: If the naming does not cover the model's family.
        """
        family, shown, _ = model_layout(model)
        if family not in self.families:
            raise ValueError(
                f"naming {self.name!r} covers the {', '.join(self.families)} models; model {shown} is a {family}"
            )
        if self.options is None:
            return {}
        if isinstance(model, str):
            config = get_model_entry(model).config
        else:
            config = getattr(model, "config", None)
        return dict(self.options(family, config))

    def _canonical(self, key: str) -> str:
        for pattern, replacement in self.aliases:
            key = re.sub(pattern, replacement, key)
        return key

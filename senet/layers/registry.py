"""One registry for every attention module: names become classes here and nowhere else.

Every registered module follows one contract: ``Module(channels, *, ...)``, input and output of the
same shape (N, C, *spatial).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, Union

from torch import nn

from .._validation import did_you_mean

_REGISTRY: dict[str, type[nn.Module]] = {}

T = TypeVar("T", bound=type)
AttentionSpec = Union[str, type, functools.partial, Callable[..., nn.Module], None]


def register_attention(name: str) -> Callable[[T], T]:
    """Class decorator registering an attention module under ``name``.

    Raises:
        ValueError: If ``name`` is already taken by another class.
    """

    def wrap(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"attention {name!r} is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        cls.attention_name = name
        return cls

    return wrap


def list_attention() -> list[str]:
    """Returns the registered attention names, sorted."""
    return sorted(_REGISTRY)


def get_attention(spec: AttentionSpec) -> Callable[..., nn.Module] | None:
    """Resolves ``spec`` to a constructor ``f(channels, **kw) -> nn.Module``.

    Args:
        spec: A registered name (case-insensitive), a module class, a ``functools.partial`` of one, any
            callable returning a module, or ``None`` (no attention).

    Returns:
        The constructor, or ``None`` when ``spec`` is ``None`` (or 'none').

    Raises:
        ValueError: If ``spec`` is an unknown name or not callable.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("none", ""):
            return None
        if key not in _REGISTRY:
            hint = did_you_mean(spec, list_attention(), n=2)
            raise ValueError(f"unknown attention {spec!r}{hint} (valid names: {', '.join(list_attention())})")
        return _REGISTRY[key]
    if callable(spec):
        return spec
    raise ValueError(f"attention must be a name, a class or a callable, got {type(spec).__name__}")


def create_attention(spec: AttentionSpec, channels: int, **kwargs: Any) -> nn.Module | None:
    """Builds an attention module for ``channels`` channels.

    Args:
        spec: A registered name, a class, a ``functools.partial`` or ``None``.
        channels: The number of channels C the module attends over.
        **kwargs: Keyword arguments of that module (e.g. ``reduction=8``, ``dims=3``).

    Returns:
        The module, or ``None`` when ``spec`` is ``None``.

    Raises:
        ValueError: On an unknown name; ``TypeError`` from the module on an argument it does not take.
    """
    factory = get_attention(spec)
    if factory is None:
        return None
    return factory(channels, **kwargs)

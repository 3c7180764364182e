"""The zoo's pairs: every registered SE network beside the same network with SE off.

An SE network is a registered entry whose default attention is not ``None``. Its plain counterpart is
always built as ``create_model(name, attention=None)`` (the registry's "plain network, exactly"); where
the registry also holds that network under a plain name (``se_resnet50`` -> ``resnet50``), the pair
names it, so that ``--models resnet50`` finds the pair. SENet-154, EfficientNet-B0 and MobileNetV3-Large
have no registered plain twin: they carry SE by design.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from ..._validation import did_you_mean
from ...models import get_model_entry, list_models
from ...models.registry import canonical_model_name, model_aliases


@dataclass(frozen=True)
class ZooPair:
    """One row of the zoo table.

    Attributes:
        name: The registered SE network (the row's key in the record).
        plain: Its registered plain twin, or ``None`` (the plain network is built with ``attention=None``).
        family: The builder's family (``'ResNet'``, ``'CifarResNet'``, ...), for sorting.
        input_size: The network's natural input (C, H, W), from the registry.
    """

    name: str
    plain: str | None
    family: str
    input_size: tuple[int, int, int]

    @property
    def names(self) -> tuple[str, ...]:
        """The registered names this pair stands for (the SE network, then its plain twin if any)."""
        return (self.name,) if self.plain is None else (self.name, self.plain)

    @property
    def label(self) -> str:
        """``'se_resnet50 / resnet50'``, or ``'senet154 / without SE'``."""
        return f"{self.name} / {self.plain or 'without SE'}"

    @property
    def is_cifar(self) -> bool:
        """A network of 32 x 32 inputs (the CIFAR ones)."""
        return self.input_size[1] <= 64


def _plain_twin(name: str) -> str | None:
    """The registered plain network of SE network ``name`` (``se_<net>`` -> ``<net>``), or ``None``."""
    plain = name.removeprefix("se_")
    if plain == name or plain not in list_models():
        return None
    twin, entry = get_model_entry(plain), get_model_entry(name)
    return plain if twin.attention is None and twin.builder is entry.builder else None


def zoo_pairs() -> list[ZooPair]:
    """Every registered SE network with its plain counterpart, in table order.

    Returns:
        The pairs, CIFAR networks first, then by family, then by name (the table sorts each family
        by size, see ``senet.bench.zoo.table``).
    """
    pairs = []
    for name in list_models():
        entry = get_model_entry(name)
        if entry.attention is None:
            continue
        pairs.append(ZooPair(name, _plain_twin(name), entry.builder.__name__, entry.input_size))
    return sorted(pairs, key=lambda p: (not p.is_cifar, p.family, p.name))


def select_pairs(patterns: Sequence[str] = ()) -> list[ZooPair]:
    """The pairs whose SE network or plain twin matches one of ``patterns`` (all pairs for none).

    Args:
        patterns: Registered names, aliases (``resnet20``) or globs (``'se_resnet*'``, ``'*cifar*'``).

    Returns:
        The matching pairs, in table order.

    Raises:
        ValueError: If a pattern matches no network, naming the close matches.
    """
    pairs = zoo_pairs()
    if not patterns:
        return pairs
    chosen: set[str] = set()
    known = sorted({n for p in pairs for n in p.names} | set(model_aliases()))
    for pattern in patterns:
        name = canonical_model_name(pattern)
        matched = {p.name for p in pairs if any(fnmatch.fnmatchcase(n, name) for n in p.names)}
        if not matched:
            hint = did_you_mean(pattern, known) or "; see `senet list`"
            raise ValueError(f"--models {pattern!r} matches no registered network{hint}")
        chosen |= matched
    return [p for p in pairs if p.name in chosen]

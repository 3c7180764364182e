"""``senet list``: the registered models and attention modules."""

from __future__ import annotations

import argparse

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the registered models (or attention modules)")
    p.add_argument("pattern", nargs="?", default=None, help="a glob, e.g. 'se_resnet*'")
    p.add_argument("--attention", action="store_true", help="list the attention modules instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..layers.registry import _REGISTRY, list_attention
    from ..models.registry import get_model_entry, list_models

    if args.attention:
        for name in list_attention():
            doc = (_REGISTRY[name].__doc__ or "").strip().splitlines()[0]
            print(f"{name:<8} {doc}")
        return 0
    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; `senet list` shows them all")
    width = max(map(len, names))
    for name in names:
        entry = get_model_entry(name)
        attention = entry.attention if isinstance(entry.attention, str) else "-"
        print(f"{name:<{width}}  {attention or '-':<5} {entry.description}")
    return 0

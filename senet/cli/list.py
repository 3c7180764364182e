"""``senet list``: the registered models (or attention modules), with their natural input size."""

from __future__ import annotations

import argparse
import fnmatch

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``list`` command."""
    p = sub.add_parser("list", help="list the registered models (or attention modules)")
    p.add_argument(
        "pattern", nargs="?", default=None,
        help="a glob ('se_resnet*') or a part of the name ('resnet20' finds cifar_resnet20 and se_cifar_resnet20)",
    )  # fmt: skip
    p.add_argument("--attention", action="store_true", help="list the attention modules instead")
    p.set_defaults(func=run)


def matching(names: list[str], pattern: str | None) -> list[str]:
    """The ``names`` matching ``pattern`` (any case): a glob if it has ``*``, ``?`` or ``[``, else a part of the name.

    Args:
        names: The names to filter.
        pattern: e.g. ``'se_resnet*'`` or ``'resnet20'``; ``None`` keeps all.

    Returns:
        The matching names, in their order.
    """
    if not pattern:
        return list(names)
    glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatchcase(n.lower(), glob.lower())]


def run(args: argparse.Namespace) -> int:
    """Runs ``senet list``; returns the exit code."""
    from ..layers.registry import get_attention, list_attention
    from ..models.registry import get_model_entry, list_models

    kind, names = ("attention module", list_attention()) if args.attention else ("model", list_models())
    shown = matching(names, args.pattern)
    if not shown:
        everything = "`senet list --attention`" if args.attention else "`senet list`"
        raise ValueError(f"no {kind} matches {args.pattern!r}; {everything} shows them all")
    width = max(map(len, shown))
    if args.attention:
        for name in shown:
            doc = (get_attention(name).__doc__ or "").strip().splitlines()[0]
            print(f"{name:<{width}}  {doc}")
        return 0
    for name in shown:
        entry = get_model_entry(name)
        attention = entry.attention if isinstance(entry.attention, str) else "-"
        size = "x".join(map(str, entry.input_size))
        print(f"{name:<{width}}  {attention or '-':<5} {size:<9}  {entry.description}")
    return 0

"""``senet pretrained``: the public ImageNet and CIFAR-10 checkpoints (list them, fetch them into the cache)."""

from __future__ import annotations

import argparse
import json

ORDER = 12


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``pretrained`` command."""
    p = sub.add_parser(
        "pretrained",
        help="list the public ImageNet and CIFAR-10 checkpoints, or fetch one into the cache",
        description="Lists the public checkpoints that load into the zoo's models (source, naming, published "
        "top-1, preprocessing), or downloads one into the cache ($SENET_CACHE or ~/.cache/senet).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", help="list (the default) or fetch")
    ls = actions.add_parser("list", help="list the checkpoints (of the models matching PATTERN)")
    ls.add_argument("pattern", nargs="?", default=None, help="a glob ('se_resnet*') or a part of a model name")
    ls.add_argument("--json", action="store_true", help="print the entries as JSON")
    ls.set_defaults(func=run_list)
    get = actions.add_parser("fetch", help="download a checkpoint into the cache (verified) and print its path")
    get.add_argument("model", help="a model name (see `senet pretrained list`)")
    get.add_argument("--tag", default=None, help="which of the model's checkpoints (default: its default one)")
    get.set_defaults(func=run_fetch)
    p.set_defaults(func=lambda args: run_list(argparse.Namespace(pattern=None, json=False)))


def run_list(args: argparse.Namespace) -> int:
    """Prints the table."""
    from ..pretrained import list_pretrained, pretrained_dir
    from .list import matching

    entries = list_pretrained()
    shown = [w for w in entries if w.model in matching([w.model for w in entries], args.pattern)]
    if not shown:
        raise ValueError(
            f"no public checkpoint for a model matching {args.pattern!r}; `senet pretrained list` shows all"
        )
    if args.json:
        rows = [
            {"model": w.model, "tag": w.tag, "default": w.default, "url": w.url, "naming": w.naming,
             "options": dict(w.options), "top1": w.top1, "top5": w.top5, "file": w.file_name,
             "sha256": w.sha256 or w.sha256_prefix, "size_bytes": w.size_bytes, "num_classes": w.num_classes,
             "dataset": w.dataset, "preprocessing": w.preprocessing.as_dict(), "source": w.source}
            for w in shown
        ]  # fmt: skip
        print(json.dumps(rows, indent=1))
        return 0
    header = ("model", "tag", "naming", "data", "top-1", "input", "mean/std", "file")
    rows = []
    for w in shown:
        p = w.preprocessing
        stats = "inception" if p.mean == (0.5, 0.5, 0.5) else "imagenet"
        rows.append((
            w.model, w.tag + (" *" if w.default else ""), w.naming, w.dataset, f"{w.top1:.2f}" if w.top1 else "n/a",
            f"{p.input_size[-1]}/{p.resize} {p.interpolation} {p.channel_order}", stats, w.file_name,
        ))  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(f"{str(v):<{w}}" for v, w in zip(row, widths, strict=True)).rstrip())
    print(f"\n* the model's default (pretrained=True). top-1: the publisher's figure (%) on the data set's "
          f"evaluation split (ImageNet-1k val, the original CIFAR-10 test set). input: crop/resize. Files are "
          f"cached in {pretrained_dir()}.")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Downloads a checkpoint into the cache and prints its path."""
    from ..models.registry import canonical_model_name, get_model_entry
    from ..pretrained import fetch, get_pretrained

    name = get_model_entry(canonical_model_name(args.model)).name
    weights = get_pretrained(name, args.tag if args.tag is not None else True)
    print(fetch(weights))
    return 0

"""``senet compare``: train a network with and without SE (or another attention), side by side."""

from __future__ import annotations

import argparse
import os

from ._train_args import add_train_arguments, config_from_args

ORDER = 25


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="train the plain network and its SE twin with one recipe and compare them",
        description="Trains --model without attention and with --attention, same recipe, data order "
        "and seeds; writes compare.json, compare.md and curves.png into --out.",
    )
    p.add_argument("--model", default="cifar_resnet20", help="the network (its attention is switched)")
    p.add_argument("--attention", default=None, help="the attention of the second twin (default se; on --resume "
                   "the recorded one)")  # fmt: skip
    p.add_argument("--seeds", type=int, default=None, help="train each twin with this many seeds (default 1; on "
                   "--resume the recorded number, which may be raised)")  # fmt: skip
    p.add_argument("--init-from", default=None, metavar="SOURCE", help="fine-tune both twins from these weights "
                   "(a checkpoint in any known naming, a run, a URL, a pretrained tag): the attention twin gets "
                   "the attention retrofitted as the identity, so both start at the checkpoint's accuracy")  # fmt: skip
    p.add_argument("--retrofit", default=None, metavar="ATTENTION", help="the second twin is the first with this "
                   "attention retrofitted (identity start) rather than built in; implied by --init-from")  # fmt: skip
    add_train_arguments(p, default_out="runs/compare-<model>-<time>")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.compare import compare, render_markdown
    from ._stop import stoppable

    with stoppable() as stop:
        config = config_from_args(args, attention=None, init_from=args.init_from, retrofit=args.retrofit)
        report = compare(config, attention=args.attention, seeds=args.seeds)
    if stop.code is not None:
        return stop.code
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    print(render_markdown(report))
    out = report["out"]
    print(f"written: {out}/compare.json, compare.md, curves.png")
    return 0

"""``senet train``: train one network (see ``senet.train.fit``).

The first SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption) stops the run after its current step with
a checkpoint and one line that says how to resume it (exit code 130 or 143); a second one stops at once,
leaving no partial checkpoint (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import os

from .._plural import plural
from ._train_args import add_train_arguments, config_from_args

ORDER = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a network on CIFAR-10/100 or an image folder",
        description="Train a network. Multi-process: torchrun --nproc_per_node=K -m senet train ... "
        "(global batch = K x --batch-size; scale --lr by K).",
    )
    p.add_argument("--model", required=True, help="a registered model (senet list)")
    p.add_argument("--attention", default=None, help="override the model's attention: se, eca, ..., or none")
    p.add_argument("--init-from", default=None, metavar="FILE", help="start from these weights: a checkpoint in "
                   "any known naming, a run directory, a URL, a pretrained tag, or a `senet retrofit` output "
                   "(a classifier of another size is replaced)")  # fmt: skip
    p.add_argument("--retrofit", default=None, metavar="ATTENTION", help="insert this attention (e.g. se) into "
                   "every residual block first, starting as the identity (see `senet retrofit`)")  # fmt: skip
    add_train_arguments(p, default_out="runs/<model>-<time>")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.run import fit
    from ._stop import stoppable

    with stoppable(lambda stopped: resume_command(args.model, stopped.out)) as stop:
        result = fit(config_from_args(args, init_from=args.init_from, retrofit=args.retrofit))
    if stop.code is not None:
        return stop.code
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    s = result.summary
    macs = f"{s['macs'] / 1e6:,.1f} M" if s["macs"] else "n/a"
    print(
        f"{s['model']}: test accuracy {100 * s['test_accuracy']:.2f}% after {plural(s['epochs'], 'epoch')} "
        f"({s['train_seconds']:.0f} s, {s['images_per_second']:,.0f} img/s); "
        f"{s['params']:,} params, {macs} multiply-adds; run in {s['config']['out']}"
    )
    return 0


def resume_command(model: str, out: os.PathLike | str) -> str:
    """The command that resumes the run in ``out`` (under torchrun, with the same number of processes)."""
    from ..train.interrupt import resume_command as command

    return command(["train", "--model", model, "--out", str(out), "--resume"])

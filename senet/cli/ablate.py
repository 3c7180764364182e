"""``senet ablate``: train one network under several settings of its SE block and tabulate them."""

from __future__ import annotations

import argparse
import os
import shlex
from typing import TYPE_CHECKING

from ._train_args import add_train_arguments, config_from_args

if TYPE_CHECKING:
    from ..train.config import TrainConfig

ORDER = 26
VARY_KEYS = ("reduction", "squeeze", "gate", "placement", "stages", "attention")  # senet.experiments.vary.VARY_KEYS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate",
        help="the paper's ablations: train one setting per value of an SE option, several seeds, one table",
        description="Trains --model once per value of --vary (same recipe, data and seeds) and writes the "
        "paper-style table (test error mean ± sd over seeds, params, multiply-adds, training time, the paper's "
        "SE-ResNet-50 numbers beside) as ablate.md, ablate.json and ablate.png into --out. Resumable: rerun with "
        "--resume to keep the finished runs and continue the others. See docs/ablations.md.",
    )
    p.add_argument("--model", default="se_cifar_resnet20", help="the network (default se_cifar_resnet20)")
    p.add_argument("--vary", required=True, metavar="KEY=V1,V2,...",
                   help=f"what varies, KEY one of {', '.join(VARY_KEYS)}; e.g. reduction=2,4,8,16,32, "
                   "squeeze=avg,max, gate=sigmoid,tanh,relu, placement=standard,pre,post,identity,after_3x3, "
                   "stages=2,3,4,all (2+3: two stages), attention=se,eca,cbam")  # fmt: skip
    p.add_argument("--seeds", type=int, default=1, help="runs per setting, seeds --seed, --seed+1, ... (default 1)")
    p.add_argument("--baseline", action="store_true", help="add a row without attention")
    p.add_argument("--attention", default=None, help="the attention whose options vary (default: the model's own)")
    add_train_arguments(p, default_out="runs/ablate-<model>-<key>-<time>")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.ablate import ablate, render_markdown
    from ._stop import stoppable

    cfg = config_from_args(args)
    with stoppable() as stop:
        report = ablate(cfg, args.vary, seeds=args.seeds, baseline=args.baseline, command=_command(args, cfg))
    if stop.code is not None:
        return stop.code
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    print(render_markdown(report))
    print(f"written: {report['out']}/ablate.md, ablate.json, ablate.png")
    return 0


def _command(args: argparse.Namespace, cfg: TrainConfig) -> str:
    """The command line as given (rebuilt from the options set), for the report."""
    parts = ["senet", "ablate", "--model", args.model, "--vary", args.vary, "--seeds", str(args.seeds)]
    parts += ["--baseline"] if args.baseline else []
    for name in cfg.given:
        flag, value = "--" + name.replace("_", "-"), getattr(cfg, name)
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, (tuple, list)):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    parts += [flag for flag, on in (("--resume", args.resume), ("--force", args.force),
                                    ("--no-progress", args.no_progress)) if on]  # fmt: skip
    return shlex.join(parts)

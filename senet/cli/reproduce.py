"""``senet reproduce``: the paper's CIFAR results (Tables 4-5), or a CPU-sized version of them."""

from __future__ import annotations

import argparse
import os
import shlex

ORDER = 27
DATASETS = ("cifar10", "cifar100")
PROTOCOL_NAMES = ("paper", "quick")  # senet.experiments.protocols.PROTOCOLS (free of torch for --help)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="train the paper's CIFAR networks with and without SE, several seeds, beside the paper's numbers",
        description="paper: ResNet-110, ResNet-164 and WRN-16-8 with and without SE under the paper's CIFAR "
        "protocol (Tables 4-5); meant for a GPU: on a CPU it prints its estimated duration and starts only with "
        "--yes. quick: ResNet-20 and SE-ResNet-20 on the full CIFAR-10, 3 seeds, about an hour on 2 CPU cores. "
        "Writes reproduce.md, reproduce.json and reproduce.png into --out; resumable with --resume.",
    )
    p.add_argument("dataset", choices=DATASETS, help="cifar10 (embedded) or cifar100 (official archive, --data-dir)")
    p.add_argument("--protocol", choices=PROTOCOL_NAMES, default="paper", help="paper (default) or quick")
    p.add_argument("--models", nargs="+", default=None, metavar="NET",
                   help="only these of the protocol's networks (paper: resnet110 resnet164 wrn16_8; quick: resnet20)")
    p.add_argument("--seeds", type=int, default=None, help="runs per network and variant (paper 1, quick 3)")
    p.add_argument("--seed", type=int, default=None, help="the first seed (0)")
    p.add_argument("--yes", action="store_true", help="start the paper protocol on a CPU (days to weeks)")
    p.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of the protocol's")
    p.add_argument("--subset", type=int, default=None, help="train on a class-balanced subset (trials only)")
    p.add_argument("--test-subset", type=int, default=None, help="test on a class-balanced subset (trials only)")
    p.add_argument("--data-dir", default=None, help="where the official CIFAR archives are")
    p.add_argument("--device", default=None, help="auto (the default), cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default=None, help="mixed precision (GPU)")
    p.add_argument("--channels-last", action="store_true", default=None, help="channels_last memory format")
    p.add_argument("--out", default=None, help="the folder (default: runs/reproduce-<dataset>-<protocol>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the reproduction in --out (default: the newest)")
    p.add_argument("--force", action="store_true", help="start anew in an --out that holds a reproduction")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.reproduce import render_markdown, reproduce
    from ..train.config import TrainConfig

    models = [m for item in args.models for m in item.split(",") if m] if args.models else None
    values = dict(dataset=args.dataset, seed=args.seed, epochs=args.epochs, subset=args.subset,
                  test_subset=args.test_subset, data_dir=args.data_dir, device=args.device, amp=args.amp,
                  channels_last=args.channels_last, out=args.out)  # fmt: skip
    given = tuple(sorted(k for k, v in values.items() if v is not None and k != "dataset"))
    cfg = TrainConfig(**{k: v for k, v in values.items() if v is not None}, resume=args.resume, force=args.force,
                      progress=not args.no_progress, given=given)  # fmt: skip
    from ._stop import stoppable

    with stoppable() as stop:
        report = reproduce(cfg, args.protocol, seeds=args.seeds, models=models, yes=args.yes,
                           command=_command(args, models))  # fmt: skip
    if stop.code is not None:
        return stop.code
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    print(render_markdown(report))
    print(f"written: {report['out']}/reproduce.md, reproduce.json, reproduce.png")
    return 0


def _command(args: argparse.Namespace, models: list[str] | None) -> str:
    """The command line as given (rebuilt from the options set), for the report."""
    parts = ["senet", "reproduce", args.dataset, "--protocol", args.protocol]
    parts += ["--models", *models] if models else []
    for name in ("seeds", "seed", "epochs", "subset", "test_subset", "data_dir", "device", "amp", "out"):
        if getattr(args, name) is not None:
            parts += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    flags = ("yes", "channels_last", "resume", "force", "no_progress")
    parts += ["--" + f.replace("_", "-") for f in flags if getattr(args, f)]
    return shlex.join(parts)

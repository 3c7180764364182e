"""Training options shared by ``senet train`` and ``senet compare``: parsed into a ``TrainConfig``."""

from __future__ import annotations

import argparse

from ..train.config import TrainConfig
from ..train.recipes import list_recipes


def add_train_arguments(p: argparse.ArgumentParser, *, default_out: str) -> None:
    """Adds the options of ``TrainConfig`` to ``p`` (recipe values default to ``None``: the recipe's)."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="cifar10", help="cifar10 (embedded), cifar100, or an image-folder path")
    g.add_argument("--data-dir", default=None, help="where official CIFAR archives are read from / downloaded to")
    g.add_argument("--subset", type=int, default=None, help="train on a class-balanced subset of N images")
    g.add_argument("--test-subset", type=int, default=None, help="evaluate on a class-balanced subset of N")
    g.add_argument("--image-size", type=int, default=None, help="crop size for image folders (default 224)")
    g.add_argument("--workers", type=int, default=4, help="DataLoader workers for image folders")
    g = p.add_argument_group("recipe (defaults come from --recipe)")
    g.add_argument("--recipe", default="quick_cifar", help=f"one of: {', '.join(list_recipes())}")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None, help="per process; the global batch is this x processes")
    g.add_argument("--lr", type=float, default=None, help="base learning rate (not scaled automatically)")
    g.add_argument("--momentum", type=float, default=None)
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--weight-decay", type=float, default=None, help="not applied to biases and BN parameters")
    g.add_argument("--schedule", choices=("step", "cosine", "onecycle", "constant"), default=None)
    g.add_argument("--milestones", type=float, nargs="+", default=None, help="step schedule: fractions of training")
    g.add_argument("--warmup-epochs", type=float, default=None)
    g.add_argument("--label-smoothing", type=float, default=None)
    g.add_argument("--grad-clip", type=float, default=None, help="clip the global gradient norm")
    g = p.add_argument_group("execution")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="mixed precision")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--out", default=default_out, help="run directory")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--force", action="store_true", help="start anew in an --out that holds a run")
    g.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (and after the last)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--reduction", type=float, default=None, help="SE reduction ratio r")
    g.add_argument("--drop-rate", type=float, default=None, help="dropout before the classifier")


def config_from_args(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    """Builds the ``TrainConfig`` of parsed arguments."""
    values = dict(
        model=args.model,
        dataset=args.dataset,
        data_dir=args.data_dir,
        recipe=args.recipe,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        milestones=tuple(args.milestones) if args.milestones else None,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        grad_clip=args.grad_clip,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        seed=args.seed,
        device=args.device,
        subset=args.subset,
        test_subset=args.test_subset,
        attention=getattr(args, "attention", None),
        reduction=args.reduction,
        drop_rate=args.drop_rate,
        image_size=args.image_size,
        workers=args.workers,
        out=args.out,
        resume=args.resume,
        force=args.force,
        eval_every=args.eval_every,
        progress=not args.no_progress,
    )
    values.update(overrides)
    return TrainConfig(**values)

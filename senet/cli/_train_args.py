"""Training options shared by ``senet train`` and ``senet compare``: parsed into a ``TrainConfig``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..train.recipes import list_recipes

if TYPE_CHECKING:  # the parser is built without torch (TrainConfig checks models and attentions with it)
    from ..train.config import TrainConfig


def add_train_arguments(p: argparse.ArgumentParser, *, default_out: str) -> None:
    """Adds the options of ``TrainConfig`` to ``p``. Every option defaults to ``None`` (not given), so that
    ``config_from_args`` knows which ones the user set; ``TrainConfig`` and the recipe fill in the rest."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=None, help="cifar10 (embedded, the default), cifar100, or an image-folder path")
    g.add_argument("--data-dir", default=None, help="where official CIFAR archives are read from / downloaded to")
    g.add_argument("--subset", type=int, default=None, help="train on a class-balanced subset of N images")
    g.add_argument("--test-subset", type=int, default=None, help="evaluate on a class-balanced subset of N")
    g.add_argument("--image-size", type=int, default=None, help="crop size for image folders (default 224)")
    g.add_argument("--workers", type=int, default=None, help="DataLoader workers for image folders (default: up to 4, "
                   "no more than the CPUs)")
    g.add_argument("--skip-corrupt", action="store_true", default=None,
                   help="image folders: skip unreadable images (counted and named) instead of stopping")
    g = p.add_argument_group("recipe (defaults come from --recipe)")
    g.add_argument("--recipe", default=None, help=f"one of: {', '.join(list_recipes())} (default: quick_cifar for "
                   "CIFAR, quick_folder for image folders)")
    g.add_argument("--epochs", type=int, default=None, help="passes over the training set")
    g.add_argument("--batch-size", type=int, default=None, help="per process; the global batch is this x processes")
    g.add_argument("--lr", type=float, default=None, help="base learning rate (not scaled automatically)")
    g.add_argument("--momentum", type=float, default=None, help="SGD momentum, in [0, 1)")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, default=None, help="not applied to biases and BN parameters")
    g.add_argument("--schedule", choices=("step", "cosine", "onecycle", "constant"), default=None,
                   help="learning-rate schedule, stepped every iteration")
    g.add_argument("--milestones", type=float, nargs="+", default=None, help="step schedule: fractions of training")
    g.add_argument("--warmup-epochs", type=float, default=None, help="linear warm-up, in epochs (may be fractional)")
    g.add_argument("--label-smoothing", type=float, default=None, help="label smoothing of the loss, in [0, 1)")
    g.add_argument("--grad-clip", type=float, default=None, help="clip the global gradient norm")
    g = p.add_argument_group("execution")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), default=None, help="mixed precision (default: none)")
    g.add_argument("--channels-last", action="store_true", default=None, help="channels_last memory format")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="train under torch.compile (--no-compile: eagerly); default: measured for the run about to "
                   "start, compiled where it saves more time than it costs, and said in the run's first line")
    g.add_argument("--seed", type=int, default=None, help="seeds initialisation, data order and augmentation (0)")
    g.add_argument("--device", default=None, help="auto (the default), cpu, cuda or cuda:N")
    g.add_argument("--out", default=None, help=f"run directory (default: {default_out}, a new one per run)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out (default: the newest run of "
                   "--model) from its last checkpoint, with its recorded options")
    g.add_argument("--force", action="store_true", help="start anew in an --out that holds a run (replacing it)")
    g.add_argument("--eval-every", type=int, default=None, help="evaluate every N epochs and after the last (1)")
    g.add_argument("--save-every", default=None, metavar="N|TIME", help="also checkpoint part-way through epochs: "
                   "every N steps, or every TIME (90s, 10m, 1h); a resume continues mid-epoch, bit-identically")
    g.add_argument("--keep-checkpoints", type=int, default=None, metavar="K",
                   help="keep the newest K checkpoints (default 2; the newest complete one is never deleted)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--reduction", type=float, default=None, help="SE reduction ratio r")
    g.add_argument("--drop-rate", type=float, default=None, help="dropout before the classifier")


def config_from_args(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    """Builds the ``TrainConfig`` of parsed arguments; ``given`` records the options the user set."""
    from ..models.registry import canonical_model_name
    from ..train.config import TrainConfig

    values = dict(
        model=canonical_model_name(args.model),
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
        skip_corrupt=args.skip_corrupt,
        out=args.out,
        eval_every=args.eval_every,
        save_every=getattr(args, "save_every", None),
        keep_checkpoints=getattr(args, "keep_checkpoints", None),
    )
    values.update(overrides)
    given = tuple(sorted(k for k, v in values.items() if v is not None and k != "model"))
    values = {k: v for k, v in values.items() if v is not None}
    return TrainConfig(**values, resume=args.resume, force=args.force, progress=not args.no_progress, given=given)

"""``senet eval``: accuracy, per-class accuracy and confusion matrix of a trained run."""

from __future__ import annotations

import argparse
import json

ORDER = 21


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``eval`` command."""
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run: accuracy, per-class accuracy, confusion matrix",
        description="Evaluates the final weights of a run (else its newest checkpoint) on the held-out split "
        "of its data set, or of another one with the same classes.",
    )
    p.add_argument("--checkpoint", required=True, help="a run directory, a checkpoint directory inside one, or "
                   "a model.safetensors of either")  # fmt: skip
    p.add_argument("--dataset", default=None, help="cifar10, cifar100 or an image folder (default: the run's own)")
    p.add_argument("--data-dir", default=None, help="where official CIFAR archives are")
    p.add_argument("--test-subset", type=int, default=None, help="a class-balanced subset of N held-out images; "
                   "0: all (default: the run's own subset on its data set, all on another)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (the default), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default: 256)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.run import evaluate_checkpoint

    m = evaluate_checkpoint(
        args.checkpoint, dataset=args.dataset, data_dir=args.data_dir, device=args.device,
        batch_size=args.batch_size, test_subset=args.test_subset,
    )  # fmt: skip
    if args.json:
        print(json.dumps(m, indent=1))
        return 0
    print(f"{m['model']} on {m['dataset']} ({m['images']:,} images): accuracy {100 * m['accuracy']:.2f}%, "
          f"loss {m['loss']:.4f}")
    classes = m["classes"]
    width = max(len(c) for c in classes)
    print("\nper-class accuracy:")
    for name, acc in zip(classes, m["per_class_accuracy"], strict=True):
        print(f"  {name:<{width}}  " + (f"{100 * acc:6.2f}%" if acc is not None else "    n/a (no held-out image)"))
    print("\nconfusion matrix (rows: true class, columns: predicted):")
    short = [c[:5] for c in classes]
    print(" " * (width + 2) + " ".join(f"{s:>5}" for s in short))
    for name, row in zip(classes, m["confusion"], strict=True):
        print(f"  {name:<{width}}" + " ".join(f"{v:>5}" for v in row))
    return 0

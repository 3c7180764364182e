"""``senet eval``: accuracy, per-class accuracy and confusion matrix of a trained run; or the ImageNet top-1
and top-5 of a public (or converted) checkpoint on a ``val/<wnid>/*.JPEG`` folder."""

from __future__ import annotations

import argparse
import json

ORDER = 21


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``eval`` command."""
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run, or an ImageNet checkpoint on a val/<wnid>/ folder",
        description="Evaluates the final weights of a run (else its newest checkpoint) on the held-out split "
        "of its data set, or of another one with the same classes. With --model and --pretrained or --weights: "
        "evaluates an ImageNet-1k checkpoint on a val/<wnid>/*.JPEG folder (--dataset) with the checkpoint's "
        "own preprocessing and class order, top-1 and top-5; a folder with some of the 1000 classes is scored "
        "among those classes' logits.",
    )
    p.add_argument("--checkpoint", default=None, help="a run directory, a checkpoint directory inside one, or "
                   "a model.safetensors of either")  # fmt: skip
    p.add_argument("--model", default=None, help="an ImageNet model (with --pretrained or --weights)")
    p.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help="the model's public checkpoint (default tag: see `senet pretrained list`)")  # fmt: skip
    p.add_argument("--weights", default=None, help="a checkpoint file of --model, in any known naming")
    p.add_argument("--dataset", default=None, help="cifar10, cifar100 or an image folder (default: the run's own); "
                   "with --model: the ImageNet val/<wnid>/ folder")  # fmt: skip
    p.add_argument("--per-class", type=int, default=None, help="with --model: the first N images of each class")
    p.add_argument("--workers", type=int, default=2, help="with --model: image decoding processes (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--data-dir", default=None, help="where official CIFAR archives are")
    p.add_argument("--test-subset", type=int, default=None, help="a class-balanced subset of N held-out images; "
                   "0: all (default: the run's own subset on its data set, all on another)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (the default), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default: 256)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``senet eval``; returns the exit code."""
    from ..train.run import evaluate_checkpoint

    if args.checkpoint is None and args.model is None:
        raise ValueError(
            "say what to evaluate: --checkpoint RUN, or --model NAME with --pretrained [TAG] or --weights FILE"
        )
    if args.checkpoint is not None and (args.model or args.pretrained or args.weights):
        raise ValueError("--checkpoint evaluates a run; --model/--pretrained/--weights evaluate a checkpoint: not both")
    if args.checkpoint is None:
        return run_imagenet(args)

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


def run_imagenet(args: argparse.Namespace) -> int:
    """``senet eval --model NAME --pretrained [TAG] | --weights FILE --dataset VAL``."""
    if (args.pretrained is None) == (args.weights is None):
        raise ValueError("--model needs one of --pretrained [TAG] or --weights FILE")
    if args.dataset is None:
        raise ValueError("--model needs --dataset: an ImageNet-style folder (val/<wnid>/*.JPEG)")
    for option in ("batch_size", "workers", "per_class"):
        value = getattr(args, option)
        if value is not None and (value < 1 if option != "workers" else value < 0):
            raise ValueError(f"--{option.replace('_', '-')} must be {'positive' if option != 'workers' else '>= 0'}, "
                             f"got {value}")  # fmt: skip
    from ..models import create_model
    from ..models.registry import canonical_model_name, get_model_entry
    from ..pretrained import data_config, evaluate_imagenet_folder, imagenet_folder_classes
    from ..train.run import resolve_device

    name = get_model_entry(canonical_model_name(args.model)).name
    imagenet_folder_classes(args.dataset)  # a wrong folder fails before any download
    device = resolve_device(args.device)
    model = create_model(name, pretrained=args.weights if args.weights is not None else args.pretrained)
    config = data_config(model)
    m = evaluate_imagenet_folder(
        model, args.dataset, config, batch_size=args.batch_size, workers=args.workers, device=device,
        limit=args.per_class, progress=not args.no_progress,
    )  # fmt: skip
    info = model.pretrained_info
    what = info.weights.tag if info.weights else info.file
    m.update(model=name, checkpoint=what, naming=info.naming, preprocessing=config, dataset=str(args.dataset))
    if args.json:
        print(json.dumps(m, indent=1))
        return 0
    print(f"{name} ({what}, {info.naming} naming) on {args.dataset}: {m['images']:,} images of {m['classes']} classes")
    print(f"preprocessing: resize {config['resize']} {config['interpolation']}, centre crop "
          f"{config['input_size'][-1]}, {config['channel_order']}, mean {tuple(config['mean'])}, "
          f"std {tuple(config['std'])}")  # fmt: skip
    print(f"top-1 {100 * m['top1']:.2f}%   top-{m['k']} {100 * m['top5']:.2f}%")
    if not m["all_classes"]:
        print(f"note: the folder holds {m['classes']} of the 1000 classes; the model was scored among those "
              f"{m['classes']} classes' logits, so these figures are not comparable with the 1000-class "
              "top-1")  # fmt: skip
    if info.weights and info.weights.top1 and m["all_classes"] and not args.per_class:
        print(f"published top-1: {info.weights.top1:.2f}% ({info.weights.source})")
    return 0

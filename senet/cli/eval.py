"""``senet eval``: accuracy, per-class accuracy and confusion matrix of a trained run; or the ImageNet top-1
and top-5 of a public (or converted) checkpoint on a ``val/<wnid>/*.JPEG`` folder."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ORDER = 21


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``eval`` command."""
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run, or an ImageNet checkpoint on a val/<wnid>/ folder",
        description="Evaluates the final weights of a run (else its newest checkpoint) on the held-out split "
        "of its data set, or of another one with the same classes (refused otherwise, naming both class lists). "
        "Any other source (a retrofit output, a weights file in any naming, a public checkpoint: --model NAME "
        "with --weights or --pretrained) is scored with its own preprocessing on --dataset; an ImageNet-1k "
        "checkpoint on a val/<wnid>/*.JPEG folder gives top-1 and top-5 (a folder with some of the 1000 classes "
        "is scored among those classes' logits).",
    )
    p.add_argument("--checkpoint", default=None, help="what to evaluate: a run folder, a checkpoint folder inside "
                   "one, a `senet retrofit` output, or any weights file (with --model when it does not record its "
                   "network)")  # fmt: skip
    p.add_argument("--model", default=None, help="the registered network, for weights that do not record it (with "
                   "--weights FILE or --pretrained [TAG])")  # fmt: skip
    p.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help="the model's public checkpoint (default tag: see `senet pretrained list`)")  # fmt: skip
    p.add_argument("--weights", default=None, help="a checkpoint file of --model in any known naming (or any source "
                   "--checkpoint takes)")  # fmt: skip
    p.add_argument("--dataset", default=None, help="cifar10, cifar100, an image folder or an ImageNet val/<wnid>/ "
                   "folder (default: a run's own); its classes must be the model's")  # fmt: skip
    p.add_argument("--per-class", type=int, default=None, help="N images of each class (the first N on an ImageNet "
                   "folder, N at random otherwise)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="image decoding processes (default: 2)")
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
    source = _source(args)
    for option in ("batch_size", "workers", "per_class"):
        value = getattr(args, option)
        if value is not None and (value < 1 if option != "workers" else value < 0):
            raise ValueError(f"--{option.replace('_', '-')} must be {'positive' if option != 'workers' else '>= 0'}, "
                             f"got {value}")  # fmt: skip
    if args.test_subset is not None and args.test_subset < 0:
        raise ValueError(f"--test-subset must be positive (or 0 for all), got {args.test_subset}")
    from ..factory import is_recorded_source, load_model, read_run_config
    from ..io import find_weights
    from ..train.device import resolve_device
    from ..train.evaluation import evaluate_checkpoint

    run_dir = None
    if not isinstance(source, bool) and is_recorded_source(source):
        try:
            run_dir = find_weights(source)[1]
        except FileNotFoundError:  # a `senet retrofit` output
            run_dir = None
    config = read_run_config(run_dir) if run_dir is not None else {}
    if args.model is not None and config.get("model") is not None:  # the run's network, not --model's, is scored
        from ..models.registry import canonical_model_name, get_model_entry

        wanted, held = (get_model_entry(canonical_model_name(n)).name for n in (args.model, config["model"]))
        if wanted != held:
            raise ValueError(f"{source} holds a run of {held}, not {wanted}; give --model {held}, or leave it out")
    recorded = config.get("dataset")
    if recorded is not None and args.per_class is None and args.dataset in (None, recorded):
        m = evaluate_checkpoint(
            source, dataset=args.dataset, data_dir=args.data_dir, device=args.device,
            batch_size=args.batch_size, test_subset=args.test_subset,
        )  # fmt: skip
        return _print_metrics(m, args.json)
    if args.dataset is None and recorded is None:
        if args.pretrained is None and _missing_path(str(source)):  # a typo, not a file without its data set
            raise FileNotFoundError(f"{source} does not exist")
        raise ValueError(f"{source} records no data set: give --dataset (cifar10, cifar100, an image folder, or an "
                         "ImageNet val/<wnid>/ folder)")  # fmt: skip
    _check_public_data(args)
    device = resolve_device(args.device)
    args.dataset = args.dataset or recorded
    model = load_model(source, model=args.model, progress=not args.no_progress)
    if _imagenet_folder(args.dataset) and model.num_classes == 1000:
        return run_imagenet(args, model, device)
    return _run_on(args, model, device)


def _missing_path(source: str) -> bool:
    """Whether ``source`` names a file or folder (a path or a weights file's name) that does not exist."""
    if "://" in source:
        return False
    path = Path(source).expanduser()
    looks_like_a_path = os.sep in source or source.startswith((".", "~")) or bool(path.suffix)
    return looks_like_a_path and not path.exists()


def _source(args: argparse.Namespace) -> str | bool:
    """The one source among --checkpoint, --weights and --pretrained (each takes what the others take)."""
    given = [v for v in (args.checkpoint, args.weights, args.pretrained) if v is not None]
    if len(given) != 1:
        raise ValueError(
            ("give one of them, not several: " if given else "say what to evaluate: ")
            + "--checkpoint SOURCE (a run, a checkpoint, a retrofit output, a weights file), or --model NAME "
            "with --weights FILE or --pretrained [TAG]"
        )
    if args.pretrained is not None and args.model is None:
        raise ValueError("--pretrained needs --model NAME")
    return given[0]


def _check_public_data(args: argparse.Namespace) -> None:
    """An ImageNet checkpoint of the pretrained table on a folder: the folder is checked before any download."""
    if args.pretrained is None or args.dataset is None or args.dataset.lower() in ("cifar10", "cifar100"):
        return
    from ..models.registry import canonical_model_name, get_model_entry
    from ..pretrained import get_pretrained, imagenet_folder_classes

    weights = get_pretrained(get_model_entry(canonical_model_name(args.model)).name, args.pretrained)
    if weights.num_classes == 1000:
        imagenet_folder_classes(args.dataset)


def _imagenet_folder(dataset: str) -> bool:
    from ..pretrained import imagenet_folder_classes

    try:
        imagenet_folder_classes(dataset)
    except (OSError, ValueError):
        return False
    return True


def _run_on(args: argparse.Namespace, model: object, device: object) -> int:
    """Any model on any data set whose classes it has: accuracy, per class, confusion."""
    from ..analysis.data import balanced_part, model_data
    from ..pretrained import data_config
    from ..train.engine import evaluate

    info = model.source_info
    _check_class_count(args.dataset, model)  # before CIFAR-100's archive is looked for (or downloaded)
    data = model_data(args.dataset, data_config(model), data_dir=args.data_dir)
    note = None
    if info.classes is not None:
        if list(info.classes) != list(data.classes):
            raise ValueError(f"{args.dataset} does not have the classes of {info.location}: its classes are "
                             f"{_listing(data.classes)}; the model's are {_listing(info.classes)}")  # fmt: skip
    elif model.num_classes != len(data.classes):
        raise ValueError(
            f"{info.location} has {model.num_classes} outputs and {args.dataset} {len(data.classes)} classes "
            f"({_listing(data.classes)}): they cannot be the same classes"
        )
    else:
        note = (f"note: {info.location} records no class names; its {model.num_classes} outputs are taken as "
                f"{args.dataset}'s classes in their order ({_listing(data.classes)})")  # fmt: skip
    if args.per_class is not None:
        from ..analysis.data import per_class_subset

        data = per_class_subset(data, args.per_class)
    elif args.test_subset:
        data = balanced_part(data, args.test_subset)
    if note and not args.json:
        print(note)
    metrics = evaluate(model.to(device), data.batches(args.batch_size, device, workers=args.workers),
                       num_classes=len(data.classes), device=device)  # fmt: skip
    m = {"model": info.model, "dataset": str(args.dataset), "classes": list(data.classes), "weights": info.weights,
         "source": info.describe(), "class_images": [sum(row) for row in metrics["confusion"]], **metrics}  # fmt: skip
    return _print_metrics(m, args.json)


def _check_class_count(dataset: str, model: object) -> None:
    """A named data set of another class count than the model's is refused from its name alone."""
    from ..data import CIFAR10_CLASSES, named_num_classes

    count = named_num_classes(dataset)
    if count is None or count == model.num_classes:
        return
    info = model.source_info
    theirs = f"{count} classes" + (f" ({_listing(CIFAR10_CLASSES)})" if dataset.lower() == "cifar10" else "")
    ours = f"{model.num_classes} classes" + (f" ({_listing(info.classes)})" if info.classes is not None else "")
    raise ValueError(f"{dataset} does not have the classes of {info.location}: {dataset} has {theirs}; the model "
                     f"has {ours}")  # fmt: skip


def _listing(classes: object) -> str:
    names = list(classes)
    return ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")


def _print_metrics(m: dict, as_json: bool) -> int:
    if as_json:
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


def run_imagenet(args: argparse.Namespace, model: object, device: object) -> int:
    """An ImageNet-1k model on a ``val/<wnid>/*.JPEG`` folder: top-1/top-5 with the checkpoint's preprocessing."""
    from ..pretrained import data_config, evaluate_imagenet_folder

    info = model.source_info
    config = data_config(model)
    m = evaluate_imagenet_folder(
        model, args.dataset, config, batch_size=args.batch_size, workers=args.workers, device=device,
        limit=args.per_class, progress=not args.no_progress,
    )  # fmt: skip
    weights = getattr(getattr(model, "pretrained_info", None), "weights", None)
    what = info.tag or info.location
    m.update(model=info.model, checkpoint=what, naming=info.naming, preprocessing=config, dataset=str(args.dataset))
    if args.json:
        print(json.dumps(m, indent=1))
        return 0
    print(f"{info.model} ({what}, {info.naming} naming) on {args.dataset}: {m['images']:,} images of {m['classes']} "
          "classes")  # fmt: skip
    print(f"preprocessing: resize {config['resize']} {config['interpolation']}, centre crop "
          f"{config['input_size'][-1]}, {config['channel_order']}, mean {tuple(config['mean'])}, "
          f"std {tuple(config['std'])}")  # fmt: skip
    print(f"top-1 {100 * m['top1']:.2f}%   top-{m['k']} {100 * m['top5']:.2f}%")
    if not m["all_classes"]:
        print(f"note: the folder holds {m['classes']} of the 1000 classes; the model was scored among those "
              f"{m['classes']} classes' logits, so these figures are not comparable with the 1000-class "
              "top-1")  # fmt: skip
    if weights and weights.top1 and m["all_classes"] and not args.per_class:
        print(f"published top-1: {weights.top1:.2f}% ({weights.source})")
    return 0

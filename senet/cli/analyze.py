"""``senet analyze``: the role of excitation (Hu et al. 2018, Fig. 6): per block and class, what the gates do."""

from __future__ import annotations

import argparse

ORDER = 23


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``analyze`` command."""
    p = sub.add_parser(
        "analyze",
        help="record the gates of every attention module over a data set: per-class means, distributions, "
        "class specificity",
        description="Runs a model over N images per class of a held-out split, records the gate of every attention "
        "module with forward hooks (the model is unchanged), and writes OUT/excitations.json, "
        "OUT/fig6_class_means.png (mean gate per channel for several classes and for all, one panel per block, as "
        "the paper's Fig. 6), OUT/fig7_distributions.png (the gate values of every block) and OUT/summary.md "
        "(class specificity and saturation per block). See docs/analysis.md.",
    )
    p.add_argument("--checkpoint", default=None, help="a training run (directory, checkpoint directory or "
                   "model.safetensors): its model, weights and data set")  # fmt: skip
    p.add_argument("--model", default=None, help="a registered model, with --weights or --pretrained")
    p.add_argument("--weights", default=None, help="with --model: a checkpoint file in any known naming, or the "
                   "output folder of `senet retrofit`")  # fmt: skip
    p.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help="with --model: its public checkpoint (default tag: see `senet pretrained list`)")  # fmt: skip
    p.add_argument("--dataset", default=None, help="cifar10, cifar100 or an image folder (root/val/<class>/ or "
                   "<class>/ folders, e.g. ImageNet's val/<wnid>/); required with --model, default: the run's "
                   "own")  # fmt: skip
    p.add_argument("--data-dir", default=None, help="where official CIFAR archives are")
    p.add_argument("--per-class", type=int, default=50, help="images per class, chosen at random from the held-out "
                   "split (default: 50, as the paper)")  # fmt: skip
    p.add_argument("--blocks", default=None, help="comma-separated blocks for the Fig. 6 panels, e.g. "
                   "SE_2_3,SE_5_2 (default: the last block of each stage and the ends of the last stage)")  # fmt: skip
    p.add_argument("--classes", default=None, help="comma-separated classes drawn in Fig. 6 (names or indices; "
                   "default: 4 spread over the label order)")  # fmt: skip
    p.add_argument("--bins", type=int, default=50, help="histogram bins per block (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of images (default: 0)")
    p.add_argument("--out", default=None, help="the folder to write (default: runs/analyze-<model>-<time>)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out (same-named files replaced)")
    p.add_argument("--device", default="auto", help="auto (the default), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    p.add_argument("--workers", type=int, default=2, help="image-folder decoding processes (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def _draw(text: str | None) -> int | list[int | str]:
    if text is None:
        return 4
    items = [c.strip() for c in text.split(",") if c.strip()]
    if not items:
        raise ValueError("--classes names no class")
    return [int(c) if c.isdigit() else c for c in items]


def run(args: argparse.Namespace) -> int:
    """Runs ``senet analyze``; returns the exit code."""
    source = _source(args)
    _positive(args, "per_class", "batch_size", "bins")
    from ..analysis.measures import MIN_PER_CLASS
    from ..analysis.recorder import MAX_BINS

    if args.bins > MAX_BINS:  # a histogram of every bin per block is kept, drawn and written
        raise ValueError(f"--bins must be at most {MAX_BINS:,}, got {args.bins:,}")

    if args.per_class < MIN_PER_CLASS:  # before any work
        raise ValueError(f"--per-class {args.per_class}: one image per class gives no estimate of the variance within "
                         "a class, so class specificity would be sampling noise (docs/analysis.md); give "
                         f"{MIN_PER_CLASS} or more (the paper: 50)")  # fmt: skip
    if args.workers < 0 or args.seed < 0:
        raise ValueError(f"--{'workers' if args.workers < 0 else 'seed'} must be >= 0")
    draw = _draw(args.classes)

    from ..analysis import analyze, check_blocks, find_gates, from_source, measure_block, per_class_subset
    from ..analysis.figures import class_indices
    from ..analysis.report import check_out, write_analysis
    from ..models.registry import get_model_entry
    from ..train.device import resolve_device
    from ..train.rundir import new_run_dir

    if args.model is not None:
        get_model_entry(args.model)  # an unknown name fails first (before --out), with its close matches
    if args.out is not None:
        check_out(args.out, force=args.force)  # before any work: nothing is overwritten by a refused run
    device = resolve_device(args.device)
    source = from_source(source, model=args.model, dataset=args.dataset, data_dir=args.data_dir)
    gates = find_gates(source.model)
    if not gates:
        raise ValueError(f"{source.name} has no attention module to analyse (no SE, ECA, ... block); analyse an "
                         "SE network, or retrofit one with `senet retrofit`")  # fmt: skip
    blocks = check_blocks(args.blocks, list(gates)) if args.blocks is not None else None
    if not isinstance(draw, int):
        class_indices(source.data.classes, draw)  # an unknown class fails before the data pass
    data = per_class_subset(source.data, args.per_class, seed=args.seed)
    stats = analyze(source.model, data, device=device, batch_size=args.batch_size, bins=args.bins,
                    workers=args.workers, progress=not args.no_progress)  # fmt: skip
    out = args.out if args.out is not None else new_run_dir(f"analyze-{source.name}")
    about = {"model": source.name, "weights": source.weights, "data": data.description, "device": str(device)}
    written = write_analysis(stats, out, blocks=blocks, draw=draw, about=about, force=args.force)

    print(f"{source.name}: gates of {len(stats.blocks)} attention modules over {stats.images:,} images "
          f"({data.description})")  # fmt: skip
    print("class specificity per block (0: class-agnostic, 1: class-specific), share of gates saturated high:")
    for block in stats.blocks.values():
        m = measure_block(block)
        spec = "n/a" if m.class_specificity is None else f"{m.class_specificity:.3f}"
        print(f"  {m.label:<8} {spec:>6}   mean {m.mean_gate:.3f}   saturated {100 * m.saturated_high:5.1f}%")
    print(f"written to {out}: {', '.join(written)}")
    return 0


def _source(args: argparse.Namespace) -> str | bool:
    """The one source among --checkpoint, --weights and --pretrained (any of them takes what the others do)."""
    given = [v for v in (args.checkpoint, args.weights, args.pretrained) if v is not None]
    if len(given) != 1:
        what = "several" if given else "none"
        raise ValueError(
            f"say what to analyse, once ({what} given): --checkpoint RUN (or any source: a retrofit output, a "
            "weights file), or --model NAME with --weights FILE or --pretrained [TAG]"
        )
    if args.pretrained is not None and args.model is None:
        raise ValueError("--pretrained needs --model NAME")
    if args.model is not None and args.dataset is None:  # checked before anything is loaded or downloaded
        raise ValueError("--model needs --dataset: cifar10, cifar100 or an image folder")
    return given[0]

"""``senet predict SOURCE IMAGES...``: the top-k classes of images, with the source's own preprocessing."""

from __future__ import annotations

import argparse
import csv
import json
import sys

ORDER = 20


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``predict`` command."""
    p = sub.add_parser(
        "predict",
        help="the top-k classes of images, from a run, a retrofit output, a weights file or a public checkpoint",
        description="Loads SOURCE as every command does (a run folder, a checkpoint inside one, a `senet retrofit` "
        "output, a weights file in any naming with --model, a tag of `senet pretrained list` with --model) and "
        "prints the top-k classes of each image with their probabilities, the images preprocessed as the "
        "source's run or publisher did (resize, centre crop, mean/std, channel order).",
    )  # fmt: skip
    p.add_argument("source", metavar="SOURCE", help="what to predict with (see above)")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files, folders (searched recursively) or "
                   "glob patterns")  # fmt: skip
    p.add_argument("--model", default=None, help="the registered network, for a source that does not record it")
    p.add_argument("--top-k", type=int, default=5, help="classes per image (default: 5)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    p.add_argument("--device", default="auto", help="auto (the default), cpu, cuda or cuda:N")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON list of {path, classes: [{label, index, "
                        "probability}]}")  # fmt: skip
    output.add_argument("--csv", action="store_true", help="CSV: path, rank, index, label, probability")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``senet predict``; returns the exit code."""
    for option in ("top_k", "batch_size"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be positive, got {getattr(args, option)}")
    from ..factory import load_model
    from ..predict import find_images, predict
    from ..train.device import resolve_device

    device = resolve_device(args.device)
    files = find_images(args.images)  # a missing image fails before the model is loaded
    model = load_model(args.source, model=args.model, progress=not args.no_progress)
    rows = predict(model, files, top_k=args.top_k, batch_size=args.batch_size, device=device,
                   progress=not args.no_progress)  # fmt: skip
    if args.json:
        print(json.dumps([{"path": r.path, "classes": [{"label": label, "index": i, "probability": p} for label, i, p
                                                       in zip(r.labels, r.indices, r.probabilities, strict=True)]}
                          for r in rows], indent=1))  # fmt: skip
        return 0
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["path", "rank", "index", "label", "probability"])
        for r in rows:
            for rank, (label, i, p) in enumerate(zip(r.labels, r.indices, r.probabilities, strict=True), 1):
                writer.writerow([r.path, rank, i, label, f"{p:.6f}"])
        return 0
    info = model.source_info
    print(f"{info.describe()}")
    if not info.classes:
        print("note: the source records no class names; classes are shown by index")
    for r in rows:
        shown = "   ".join(f"{label} {100 * p:.1f}%" for label, p in zip(r.labels, r.probabilities, strict=True))
        print(f"{r.path}: {shown}")
    return 0

"""``senet retrofit``: attention inserted into a trained network, its weights kept, written with a report."""

from __future__ import annotations

import argparse

from .._choices import PLACEMENTS

ORDER = 14


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``retrofit`` command."""
    p = sub.add_parser(
        "retrofit",
        help="insert SE (or another attention) into a trained network, starting as the identity",
        description="Loads a checkpoint (ours, or a public naming) into its network, inserts an attention module "
        "into every residual block (or the blocks named by --where), starting as the identity so the network "
        "computes exactly what it did, and writes OUT/model.safetensors, OUT/retrofit.json and OUT/report.md. "
        "Fine-tune the result with `senet train --model NAME --init-from OUT --retrofit se`.",
    )
    p.add_argument("--model", required=True, help="the plain network the checkpoint belongs to (e.g. resnet50)")
    p.add_argument("--weights", default=None, help="the checkpoint: a file in any known naming or a run directory")
    p.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help="a public checkpoint of --model instead (see `senet pretrained list`)")  # fmt: skip
    p.add_argument("--attention", default="se", help="the attention to insert (see `senet list --attention`)")
    p.add_argument("--reduction", type=float, default=16, help="SE reduction ratio r (default: 16)")
    p.add_argument("--placement", default="standard", choices=PLACEMENTS, help="where in a residual block: "
                   "standard (the default), pre, post, identity, after_3x3")  # fmt: skip
    p.add_argument("--where", default=None, help="comma-separated block or layer names (default: every block)")
    p.add_argument("--image-size", type=int, default=None, metavar="PX", help="count the report's multiply-adds "
                   "at PX x PX (default: the model's own input size)")  # fmt: skip
    p.add_argument("--no-identity-init", action="store_true", help="start from the paper's initialisation instead")
    p.add_argument("--out", required=True, help="the folder to write (an existing non-empty one needs --force)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``senet retrofit``; returns the exit code."""
    import math

    if (args.weights is None) == (args.pretrained is None):
        raise ValueError("give the checkpoint to retrofit: --weights FILE or --pretrained [TAG] (one of them)")
    if not math.isfinite(args.reduction) or args.reduction <= 0:
        raise ValueError(f"--reduction must be a positive number, got {args.reduction}")
    if args.image_size is not None and args.image_size <= 0:
        raise ValueError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    where = [w.strip() for w in args.where.split(",") if w.strip()] if args.where is not None else None
    if where is not None and not where:
        raise ValueError("--where names no block")
    from ..factory import retrofit_checkpoint
    from ..layers.registry import get_attention
    from ..models.registry import get_model_entry

    name = get_model_entry(args.model).name  # the model and the attention fail before --out is looked at
    if get_attention(args.attention) is None:
        raise ValueError("--attention none inserts nothing; name the attention to insert (e.g. se)")
    report = retrofit_checkpoint(
        name, args.weights if args.weights is not None else args.pretrained, args.out, attention=args.attention,
        reduction=args.reduction, placement=args.placement, identity_init=not args.no_identity_init, where=where,
        force=args.force, input_size=args.image_size,
    )  # fmt: skip
    added = f"{report.params_added:,} parameters" + (f", {report.macs_added:,} multiply-adds" if report.macs_added
                                                      is not None else "")  # fmt: skip
    print(f"{len(report.inserted)} {report.attention} modules inserted into {name} ({added}); written to {args.out}")
    print(f"fine-tune: senet train --model {name} --init-from {args.out} --retrofit {args.attention} ...")
    return 0

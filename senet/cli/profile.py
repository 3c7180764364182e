"""``senet profile``: parameters, multiply-adds and activation memory of a model, or the paper's cost table."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORDER = 20


@dataclass(frozen=True)
class ProfileCommand:
    """What ``senet profile`` was asked to do."""

    model: str | None
    paper: bool
    input_size: tuple[int, ...]
    batch_size: int
    create_kwargs: tuple[tuple[str, Any], ...]
    fmt: str
    depth: int | None
    out: Path | None


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``profile`` command."""
    from ..models.registry import PLACEMENTS
    from ..profiler.render import FORMATS

    p = sub.add_parser(
        "profile",
        help="count parameters, multiply-adds and activation memory (per layer, total, SE share)",
        description=(
            "Profiles one forward pass of a registered model on the meta device: per-module parameters, "
            "multiply-adds (convolutions, FC layers, SE pooling and scaling) and activation memory, with "
            "the SE/attention share. --paper compares our counts with the paper's cost tables."
        ),
    )
    p.add_argument("model", nargs="?", help="a registered model name (see `senet list`)")
    p.add_argument("--paper", action="store_true", help="compare with the paper's GFLOPs and parameter counts")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N", help="one sample's shape (default: 3 224 224)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the profiled pass (default: 1)")
    p.add_argument("--attention", help="attention module name, or 'none' for the plain network")
    p.add_argument("--reduction", type=float, help="SE reduction ratio r")
    p.add_argument("--se-stages", type=int, nargs="+", metavar="STAGE", help="stages carrying SE (stem = 1)")
    p.add_argument("--se-placement", choices=PLACEMENTS, help="where SE sits in a residual block")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--depth", type=int, help="show modules down to this depth (rows hold subtree totals)")
    p.add_argument("--out", type=Path, help="write to this file instead of standard output")
    p.set_defaults(func=run)


def _command(args: argparse.Namespace) -> ProfileCommand:
    if args.paper == bool(args.model):
        raise ValueError("give a model name or --paper (one of the two)")
    if args.depth is not None and args.depth < 0:
        raise ValueError(f"--depth must be >= 0, got {args.depth}")
    kwargs: dict[str, Any] = {}
    if args.attention is not None:
        kwargs["attention"] = None if args.attention.lower() == "none" else args.attention
    if args.reduction is not None:
        kwargs["reduction"] = int(args.reduction) if args.reduction.is_integer() else args.reduction
    if args.se_stages is not None:
        kwargs["se_stages"] = tuple(args.se_stages)
    if args.se_placement is not None:
        kwargs["se_placement"] = args.se_placement
    if args.paper and (kwargs or args.input_size or args.batch_size != 1 or args.depth is not None):
        raise ValueError("--paper takes no model, input or depth options (each row sets its own)")
    return ProfileCommand(
        model=args.model,
        paper=args.paper,
        input_size=tuple(args.input_size or (3, 224, 224)),
        batch_size=args.batch_size,
        create_kwargs=tuple(kwargs.items()),
        fmt=args.format,
        depth=args.depth,
        out=args.out,
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``senet profile``; returns the exit code."""
    from ..profiler.paper import compare_with_paper, format_comparison
    from ..profiler.zoo import profile_model

    command = _command(args)
    if command.paper:
        progress = (lambda line: print(line, file=sys.stderr, flush=True)) if sys.stderr.isatty() else None
        text = format_comparison(compare_with_paper(progress=progress), command.fmt)
    else:
        report = profile_model(
            command.model, command.input_size, batch_size=command.batch_size, **dict(command.create_kwargs)
        )
        text = report.format(command.fmt, command.depth)
    if command.out is None:
        print(text)
    else:
        command.out.write_text(text + "\n")
        print(f"wrote {command.out}")
    return 0

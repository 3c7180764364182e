"""``senet profile``: parameters, multiply-adds and activation memory of a model, or the paper's cost table."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._choices import FORMATS, PLACEMENTS

ORDER = 20


@dataclass(frozen=True)
class ProfileCommand:
    """What ``senet profile`` was asked to do."""

    model: str | None
    paper: bool
    input_size: tuple[int, int, int] | None  # None: the model's natural input
    batch_size: int
    create_kwargs: tuple[tuple[str, Any], ...]
    fmt: str
    depth: int | None
    out: Path | None
    force: bool


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``profile`` command."""
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
    p.add_argument(
        "--input-size", type=int, nargs="+", metavar="N",
        help="one sample's shape C H W; the network is built for C channels (default: the model's own, see "
        "`senet list`: 3 32 32 for the CIFAR networks, 3 224 224 for most)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the profiled pass (default: 1)")
    p.add_argument("--attention", help="attention module name, or 'none' for the plain network")
    p.add_argument("--reduction", type=float, help="SE reduction ratio r")
    p.add_argument("--se-stages", type=int, nargs="+", metavar="STAGE", help="stages carrying SE (the stem is stage 1)")
    p.add_argument("--se-placement", choices=PLACEMENTS, help="where SE sits in a residual block")
    p.add_argument("--format", choices=FORMATS, default=None, help="output format (default: table)")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--depth", type=int, help="show modules down to this depth (rows hold subtree totals)")
    p.add_argument("--out", type=Path, help="write to this file, not standard output (an existing one needs --force)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.set_defaults(func=run)


def _format(args: argparse.Namespace) -> str:
    if args.json and args.format not in (None, "json"):
        raise ValueError(f"--json and --format {args.format} disagree; give one of them")
    return "json" if args.json else args.format or "table"


def _input_size(values: list[int] | None) -> tuple[int, int, int] | None:
    if values is None:
        return None
    if len(values) != 3 or any(v <= 0 for v in values):
        given = " ".join(map(str, values))
        raise ValueError(f"--input-size takes three positive numbers C H W (e.g. 3 224 224), got {given}")
    return values[0], values[1], values[2]


def _out(args: argparse.Namespace) -> Path | None:
    """The output file, checked before any work: its folder exists, and it does not (unless --force)."""
    if args.out is None:
        return None
    from ..io import check_output_file

    return check_output_file(args.out, args.force, label="--out ")


def _command(args: argparse.Namespace) -> ProfileCommand:
    if args.paper == bool(args.model):
        raise ValueError("give a model name or --paper (one of the two)")
    if args.depth is not None and args.depth < 0:
        raise ValueError(f"--depth must be >= 0, got {args.depth}")
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.force and args.out is None:
        raise ValueError("--force only applies to --out")
    from ..layers.registry import get_attention
    from ..models.registry import get_model_entry

    if args.model is not None:
        get_model_entry(args.model)  # an unknown name fails before --out is looked at, with its close matches
    kwargs: dict[str, Any] = {}
    if args.attention is not None:
        kwargs["attention"] = None if args.attention.lower() == "none" else args.attention
        get_attention(kwargs["attention"])  # likewise an unknown attention
    if args.reduction is not None:
        if args.reduction <= 0:
            raise ValueError(f"--reduction must be positive, got {args.reduction:g}")
        kwargs["reduction"] = int(args.reduction) if args.reduction.is_integer() else args.reduction
    if args.se_stages is not None:
        kwargs["se_stages"] = tuple(args.se_stages)
    if args.se_placement is not None:
        kwargs["se_placement"] = args.se_placement
    if args.paper and (kwargs or args.input_size or args.batch_size != 1 or args.depth is not None):
        raise ValueError("--paper takes no model, input or depth options (each row sets its own)")
    input_size = _input_size(args.input_size)
    if input_size is not None:
        kwargs["in_chans"] = input_size[0]  # the network is built for the input's channels
    return ProfileCommand(
        model=args.model,
        paper=args.paper,
        input_size=input_size,
        batch_size=args.batch_size,
        create_kwargs=tuple(kwargs.items()),
        fmt=_format(args),
        depth=args.depth,
        out=_out(args),
        force=args.force,
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``senet profile``; returns the exit code."""
    from ..io import atomic_write_text, one_line
    from ..profiler.paper import compare_with_paper, format_comparison
    from ..profiler.zoo import profile_model

    command = _command(args)
    if command.paper:
        progress = (lambda line: print(line, file=sys.stderr, flush=True)) if sys.stderr.isatty() else None
        text = format_comparison(compare_with_paper(progress=progress), command.fmt)
    else:
        options = dict(command.create_kwargs)
        try:
            report = profile_model(command.model, command.input_size, batch_size=command.batch_size, **options)
        except RuntimeError as e:
            if command.input_size is None:
                raise
            shape = "x".join(map(str, command.input_size))
            raise ValueError(f"{command.model} cannot take a {shape} input: {one_line(e)}") from None
        se_options = [f"--{k.replace('_', '-')}" for k in ("reduction", "se_stages", "se_placement") if k in options]
        if se_options and not report.attention_modules():
            options_given = ", ".join(se_options)
            raise ValueError(f"{options_given} need attention; {command.model} has none here (add --attention se)")
        text = report.format(command.fmt, command.depth)
    if command.out is None:
        print(text)
        return 0
    if command.out.exists() and not command.force:  # appeared while profiling
        raise FileExistsError(f"--out {command.out} exists; add --force to replace it")
    atomic_write_text(command.out, text + "\n")
    print(f"wrote {command.out}")
    return 0

"""``senet export``: a network (with trained weights) as an ONNX or TorchScript file, verified against PyTorch."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .._choices import EXPORT_FORMATS

ORDER = 22

# The formats of ``senet export`` (``senet.export.FORMATS``), here so that ``--help`` imports no torch.
# What a file name's suffix says when --format is not given.
SUFFIX_FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}
ONNX_HINT = "ONNX export needs the onnx extra: pip install 'senet[onnx]'"


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``export`` command."""
    p = sub.add_parser(
        "export",
        help="export a network to ONNX or TorchScript, verified against PyTorch",
        description="Exports a registered network (with --weights: trained weights) in eval mode to an ONNX "
        "file (opset 17+, through torch.onnx.export with dynamo=False) or a traced TorchScript file, then "
        "runs the file (onnxruntime / torch.jit.load) on random inputs and compares it with PyTorch, at a "
        "second batch and input size too. SE exports on its textbook path (mean over H, W; 1x1 "
        "convolutions; sigmoid or HardSigmoid; multiply), so the file is not tied to one input size.",
    )  # fmt: skip
    p.add_argument("out", type=Path, metavar="OUT", help="the file to write (an existing one needs --force)")
    p.add_argument("--model", help="a registered model name (see `senet list`); needed without --weights or "
                   "with weights that do not record their network (a bare file, a URL, a tag)")  # fmt: skip
    p.add_argument("--weights", help="what to export: a run folder, a checkpoint folder inside one, a `senet "
                   "retrofit` output, a weights file in any format and naming, a URL or a tag of `senet pretrained "
                   "list` (default: freshly initialised weights, said in the output)")  # fmt: skip
    p.add_argument("--format", choices=EXPORT_FORMATS, help="onnx or torchscript (default: from OUT's suffix: "
                   ".onnx, or .pt / .ts for TorchScript)")  # fmt: skip
    p.add_argument("--image-size", type=int, metavar="S", help="trace at S x S pixels (default: the model's "
                   "own, 224 for most, 32 for the CIFAR networks); the file also takes other sizes")  # fmt: skip
    p.add_argument("--dynamic-batch", action="store_true", help="leave the batch size free (default: batch 1); "
                   "verification then runs batch sizes 1 and 3")  # fmt: skip
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 to 20 (default: 17)")
    p.add_argument("--rtol", type=float, default=1e-4, help="the relative error verification allows (max |file - "
                   "torch| / max |torch|; default: 1e-4)")  # fmt: skip
    p.add_argument("--no-verify", action="store_true", help="do not run the file against PyTorch")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=run)


def _format(args: argparse.Namespace) -> str:
    if args.format is not None:
        return args.format
    fmt = SUFFIX_FORMATS.get(args.out.suffix.lower())
    if fmt is None:
        raise ValueError(f"give --format onnx or --format torchscript (OUT {args.out} has no .onnx, .pt or .ts suffix)")
    return fmt


def _check(args: argparse.Namespace, fmt: str) -> None:
    """Checks every option before any work (building a large network takes seconds)."""
    if args.image_size is not None and args.image_size <= 0:
        raise ValueError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    if not (math.isfinite(args.rtol) and args.rtol > 0):
        raise ValueError(f"--rtol must be a positive number, got {args.rtol}")
    if fmt != "onnx" and args.opset != 17:
        raise ValueError("--opset applies to --format onnx only")
    if not 17 <= args.opset <= 20:
        raise ValueError(f"--opset must be from 17 to 20, got {args.opset}")
    if args.out.is_dir():
        raise IsADirectoryError(f"OUT {args.out} is a folder; give a file name")
    if not args.out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {args.out}: the folder {args.out.parent} does not exist")
    if args.out.exists() and not args.force:
        raise FileExistsError(f"{args.out} exists; add --force to replace it")


def run(args: argparse.Namespace) -> int:
    """Runs ``senet export``; returns the exit code."""
    from .main import UserError

    if args.model is None and args.weights is None:
        raise ValueError("say what to export: --weights SOURCE (a run, a retrofit output, a file), or --model NAME")
    if args.model is not None:
        from ..models.registry import canonical_model_name, get_model_entry

        get_model_entry(canonical_model_name(args.model))  # an unknown name fails first, with its close matches
    fmt = _format(args)
    _check(args, fmt)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UserError(ONNX_HINT) from None
    from ..export import MissingDependencyError, export_onnx, export_torchscript
    from ..factory import load_model
    from ..models import create_model

    if args.weights is None:
        model = create_model(args.model).eval()
        print(f"note: no --weights: {model.model_name} is exported with freshly initialised (random) weights")
    else:
        model = load_model(args.weights, model=args.model)
        print(f"loaded {model.source_info.describe()}")
    options = dict(input_size=args.image_size, dynamic_batch=args.dynamic_batch, verify=not args.no_verify,
                   force=args.force, rtol=args.rtol)  # fmt: skip
    try:
        if fmt == "onnx":
            report = export_onnx(model, args.out, opset=args.opset, **options)
        else:
            report = export_torchscript(model, args.out, **options)
    except MissingDependencyError as e:
        raise UserError(str(e)) from None
    except RuntimeError as e:  # e.g. an input size the network cannot take (PyTorch's own error)
        reason = str(e).strip().splitlines()[0]
        raise ValueError(f"{model.model_name} cannot be exported at this input: {reason}") from None
    print(report.summary())
    return 0

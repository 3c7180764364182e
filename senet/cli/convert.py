"""``senet convert``: a public checkpoint into this library's keys (or ours into a public naming)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._choices import NAMINGS

ORDER = 13


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``convert`` command."""
    p = sub.add_parser(
        "convert",
        help="convert a checkpoint between this library's keys and a public naming",
        description="Reads a checkpoint (.pth/.pt/.tar with or without a state_dict wrapper, .safetensors, or a "
        "senet run directory) without running pickled code, recognises its naming from the keys, checks every "
        "tensor against the model and writes it as safetensors in the target naming (ours by default).",
    )
    p.add_argument("input", type=Path, help="the checkpoint to read")
    p.add_argument("output", type=Path, help="the .safetensors file to write (an existing one needs --force)")
    p.add_argument("--model", required=True, help="the model the weights belong to (see `senet list`)")
    p.add_argument("--source", default="auto", choices=("auto", *NAMINGS),
                   help="the input's naming (default: recognised from the keys)")  # fmt: skip
    p.add_argument("--to", default="ours", choices=NAMINGS, help="the output's naming (default: ours)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Converts and writes the checkpoint; returns the exit code."""
    import json

    from ..convert import OURS, convert_state_dict, naming_options
    from ..io import atomic_save_tensors, check_output_file, read_state_dict
    from ..models.registry import canonical_model_name, get_model_entry
    from ..pretrained.loading import checkpoint_naming
    from ..pretrained.provenance import senet_record

    name = get_model_entry(canonical_model_name(args.model)).name
    out = args.output
    if out.suffix != ".safetensors":
        raise ValueError(f"{out}: the output is written as safetensors; name it *.safetensors")
    check_output_file(out, args.force)
    if out.exists() and args.input.exists() and out.resolve() == args.input.resolve():
        raise ValueError("the output would replace the input; choose another output file")
    state = read_state_dict(args.input)
    record = senet_record(args.input)
    source = args.source if args.source != "auto" else checkpoint_naming(state, name, record)
    model = _shaped_model(args.input, name, state, source, record.model_options if record else None)
    if source == OURS:  # declared, recorded or read from the keys: every key must then be the model's own
        _refuse_foreign_keys(state, model, name, args.input, declared=args.source == OURS, recorded=record is not None)
        _refuse_missing_keys(state, model, name, args.input)
    ours = convert_state_dict(state, source, model=model)  # checks every key and shape
    converted = ours if args.to == OURS else convert_state_dict(ours, OURS, model=model, target=args.to)
    # The network the weights compute in: what the input records, else its publisher's (the keys do not say).
    options = record.model_options if record and record.model_options is not None else naming_options(source, name)
    metadata = {"senet_model": name, "naming": args.to, "model_options": json.dumps(options)}
    atomic_save_tensors(converted, out, metadata=metadata)
    print(f"{len(converted)} tensors of {name} written to {out} ({args.to} naming)")
    return 0


def _shaped_model(path: Path, name: str, state: dict[str, Any], source: str, options: dict[str, Any] | None) -> Any:
    """``name`` as the weights were trained (on the meta device: shapes only): a run's own architecture and
    class count, or, for a file in our keys, the class count its classifier holds; else ``name`` itself."""
    from ..convert import OURS
    from ..convert.prefixes import strip_prefixes
    from ..factory.runs import build_run_model, read_run_config
    from ..models import create_model
    from ..utils.skeleton import meta_skeleton

    with meta_skeleton():
        if path.is_dir() and (path / "config.json").is_file():
            shape = build_run_model(read_run_config(path), 1)
        elif source == OURS:
            shape = create_model(name, **(options or {}))
        else:
            return name
        classifier = shape.get_classifier()
        prefix = next((p for p, m in shape.named_modules() if m is classifier and p), None)
        weight = strip_prefixes(state)[0].get(f"{prefix}.weight") if prefix else None
        if weight is not None and getattr(weight, "ndim", 0) >= 1 and weight.shape[0] != shape.num_classes:
            shape.reset_classifier(int(weight.shape[0]))
    return shape


def _refuse_foreign_keys(state: dict[str, Any], model: Any, name: str, path: Path, *, declared: bool,
                         recorded: bool) -> None:  # fmt: skip
    """Refuses a checkpoint read as our keys that holds keys ``model`` lacks (another naming's, or another
    network's: our keys of a variant with other attention or options)."""
    from ..convert import OURS
    from ..convert.naming import model_layout
    from ..convert.prefixes import strip_prefixes
    from ..pretrained.loading import checkpoint_naming

    keys = list(strip_prefixes(state)[0])
    own = model_layout(model)[2]
    foreign = [k for k in keys if k not in own]
    if not foreign:
        return
    found = f"{len(foreign)} of the {len(keys)} keys are not {name}'s (e.g. {foreign[0]!r})"
    if not declared and not recorded:  # read as ours from the keys: they are another network's
        raise ValueError(f"{path} does not fit model {name!r}: {found}; give the --model the file belongs to")
    try:
        naming = checkpoint_naming(state, name)
        reading = f"; they read as the {naming!r} naming" if naming != OURS else ""
    except ValueError:
        reading = ""
    why, fix = ("--source ours", "drop --source or give the right one") if declared else (
        "the file says its keys are ours, but", "give --source")
    raise ValueError(f"{why}: {found}{reading}; {fix}")


def _refuse_missing_keys(state: dict[str, Any], model: Any, name: str, path: Path) -> None:
    """Refuses a checkpoint in our keys that lacks keys of ``model``: the weights of another network (a shallower
    one, or the plain twin of an SE network) that the output would name ``name``."""
    from ..convert.naming import model_layout
    from ..convert.prefixes import strip_prefixes

    keys = set(strip_prefixes(state)[0])
    missing = [k for k in model_layout(model)[2] if k not in keys and not k.endswith(".num_batches_tracked")]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:3]) + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        raise ValueError(f"{path} does not fit model {name!r}: {len(missing)} of its keys are missing from the file "
                         f"({shown}); give the --model the file belongs to")  # fmt: skip

"""A retrofitted zoo model on disk: written with what it takes to rebuild it, read back exactly.

``senet retrofit`` writes ``OUT/model.safetensors`` (the weights, every original key kept plus the new
attention modules) whose metadata records the zoo model, its options (e.g. the publisher's
``stem_pool='ceil'``), its class count and the retrofit arguments, with ``OUT/retrofit.json`` and
``OUT/report.md`` beside it. ``load_retrofitted`` rebuilds the same network (retrofitting is
deterministic: the same architecture gets the same modules under the same keys) and loads it strictly;
``senet train --init-from OUT --retrofit se`` fine-tunes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from ..io import MODEL_FILE, atomic_save_tensors, check_output_folder, replace_folder, safetensors_metadata
from .api import retrofit
from .report import RetrofitReport

METADATA_KEY = "senet_retrofit"


def retrofit_checkpoint(
    model: str,
    weights: str | os.PathLike | bool,
    out: str | os.PathLike,
    *,
    attention: str = "se",
    reduction: float = 16,
    placement: str = "standard",
    identity_init: bool = True,
    where: list[str] | None = None,
    force: bool = False,
) -> RetrofitReport:
    """Loads a checkpoint into its zoo model, retrofits attention and writes the result to ``out``.

    Args:
        model: The registered model the checkpoint belongs to (the plain network: ``'resnet50'``).
        weights: A checkpoint file in any known naming, a run directory, a URL, ``True`` or a tag of the
            pretrained table (see ``create_model(pretrained=...)``).
        out: The folder to write (created; an existing non-empty one needs ``force``).
        attention, reduction, placement, identity_init, where: As ``senet.retrofit``.
        force: Replace an existing non-empty ``out``.

    Returns:
        The retrofit report.

    Raises:
        FileExistsError: If ``out`` holds files and ``force`` is not set (nothing is written).
        ValueError: From loading or retrofitting (one line).
    """
    from ..models import create_model
    from ..models.registry import changed_options

    out = check_output_folder(out, force)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder {out.parent} does not exist")
    base = create_model(model, pretrained=weights)
    info = base.pretrained_info
    options = changed_options(base)
    built, report = retrofit(base, attention, reduction=reduction, placement=placement,
                             identity_init=identity_init, where=where, inplace=True)  # fmt: skip
    record = {
        "model": base.model_name, "num_classes": base.num_classes, "model_options": options,
        "retrofit": {"attention": attention, "reduction": reduction, "placement": placement,
                     "identity_init": identity_init, "where": where},
        "source": {"file": info.file, "naming": info.naming, "tag": info.weights.tag if info.weights else None},
    }  # fmt: skip
    with replace_folder(out) as staging:
        atomic_save_tensors(built.state_dict(), staging / MODEL_FILE, metadata={METADATA_KEY: json.dumps(record)})
        (staging / "retrofit.json").write_text(json.dumps({**record, "report": report.to_dict()}, indent=1))
        (staging / "report.md").write_text(report.format("markdown") + "\n")
    return report


def retrofit_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The retrofit record of a ``senet retrofit`` output (folder or its ``model.safetensors``), else ``None``."""
    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() else path
    if file.suffix != ".safetensors" or not file.is_file():
        return None
    metadata = safetensors_metadata(file) or {}  # None: not a safetensors file, so not ours
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else None


def load_retrofitted(path: str | os.PathLike, *, num_classes: int | None = None) -> nn.Module:
    """Rebuilds and loads a model written by ``retrofit_checkpoint`` (strictly).

    Args:
        path: The ``senet retrofit`` output folder or its ``model.safetensors``.
        num_classes: Replace the classifier by a new one of this size (fine-tuning on other classes).

    Raises:
        ValueError: If ``path`` is not a ``senet retrofit`` output, or its weights do not fit.
    """
    from ..models import create_model
    from ..pretrained import load_pretrained

    record = retrofit_record(path)
    if record is None:
        raise ValueError(f"{path} is not the output of `senet retrofit` (no retrofit record in its metadata)")
    model = create_model(record["model"], num_classes=record["num_classes"], **record["model_options"])
    args = record["retrofit"]
    model, _ = retrofit(model, args["attention"], reduction=args["reduction"], placement=args["placement"],
                        identity_init=args["identity_init"], where=args["where"], inplace=True)  # fmt: skip
    file = Path(path) / MODEL_FILE if Path(path).is_dir() else Path(path)
    load_pretrained(model, file, source="ours")
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model

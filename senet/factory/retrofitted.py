"""A ``senet retrofit`` output, read back: the zoo network rebuilt with its attention modules, loaded exactly.

``senet retrofit`` writes ``OUT/model.safetensors`` whose metadata (``METADATA_KEY``) records the zoo model,
its options (e.g. the publisher's ``stem_pool='ceil'``), its class count and names, its preprocessing and
the retrofit arguments. Retrofitting is deterministic (the same architecture gets the same modules under
the same keys), so the record rebuilds the same network and its weights load strictly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from ..io import MODEL_FILE, safetensors_metadata
from ..models import create_model
from ..pretrained import load_pretrained
from ..retrofit.api import retrofit

METADATA_KEY = "senet_retrofit"


def retrofit_file(path: str | os.PathLike) -> Path:
    """The weights file of a ``senet retrofit`` output given as its folder or the file itself."""
    path = Path(path).expanduser()
    return path / MODEL_FILE if path.is_dir() else path


def retrofit_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The retrofit record of a ``senet retrofit`` output (folder or its ``model.safetensors``), else ``None``."""
    file = retrofit_file(path)
    if file.suffix != ".safetensors" or not file.is_file():
        return None
    metadata = safetensors_metadata(file) or {}  # None: not a safetensors file, so not ours
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else None


def build_retrofitted(record: dict[str, Any]) -> nn.Module:
    """The network a retrofit record describes, freshly initialised (the caller loads its weights)."""
    model = create_model(record["model"], num_classes=record["num_classes"], **record["model_options"])
    args = record["retrofit"]
    model, _ = retrofit(model, args["attention"], reduction=args["reduction"], placement=args["placement"],
                        identity_init=args["identity_init"], where=args["where"], inplace=True)  # fmt: skip
    return model


def load_retrofitted(path: str | os.PathLike, *, num_classes: int | None = None) -> nn.Module:
    """Rebuilds and loads a model written by ``senet retrofit`` (strictly).

    Args:
        path: The ``senet retrofit`` output folder or its ``model.safetensors``.
        num_classes: Replace the classifier by a new one of this size (fine-tuning on other classes).

    Raises:
        ValueError: If ``path`` is not a ``senet retrofit`` output, or its weights do not fit.
    """
    record = retrofit_record(path)
    if record is None:
        raise ValueError(f"{path} is not the output of `senet retrofit` (no retrofit record in its metadata)")
    model = build_retrofitted(record)
    load_pretrained(model, retrofit_file(path), source="ours")
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model
